"""DynamoDB's published on-demand prices, us-east-1, Standard table class.

Source: https://aws.amazon.com/dynamodb/pricing/on-demand/ as published since 1 November 2024,
when AWS halved on-demand throughput prices; recorded here in December 2026 without re-reading
the live page, so check it before quoting a figure. A strongly consistent read of up to 4 KB is
one read request unit (an eventually consistent one half, a transactional one two); a write of up
to 1 KB is one write request unit (a transactional one two); index writes are billed alike.
"""

from __future__ import annotations

REGION = "us-east-1"
PRICES_DATE = "2024-11-01"
SOURCE = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
USD_PER_MILLION_READ_UNITS = 0.125
USD_PER_MILLION_WRITE_UNITS = 0.625
HOURS_PER_MONTH = 730  # AWS's pricing month
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


def describe() -> str:
    return (
        f"on-demand, {REGION}, Standard table class: ${USD_PER_MILLION_READ_UNITS} per million "
        f"read request units, ${USD_PER_MILLION_WRITE_UNITS} per million write request units "
        f"(published prices as of {PRICES_DATE}, {SOURCE}); a month is {HOURS_PER_MONTH} hours"
    )
