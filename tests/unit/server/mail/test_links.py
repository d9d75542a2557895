"""Link templates and times as mail shows them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.mail.links import check_link_template, token_link, utc_minute


def test_the_token_is_url_quoted_in_the_link() -> None:
    link = token_link("tok/en+with=odd&chars", "https://app.example/reset?token={token}")

    assert link == "https://app.example/reset?token=tok%2Fen%2Bwith%3Dodd%26chars"


@pytest.mark.parametrize("template", ["https://a.example/", "https://a.example/{token}{token}"])
def test_a_template_needs_the_placeholder_exactly_once(template: str) -> None:
    with pytest.raises(ValueError, match=r"\{token\} exactly once"):
        check_link_template(template)


def test_times_are_shown_to_the_minute_in_utc_and_naive_ones_refused() -> None:
    assert utc_minute(datetime(2026, 11, 26, 4, 15, 59, tzinfo=UTC)) == "2026-11-26 04:15 UTC"
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_minute(datetime(2026, 11, 26, 4, 15))
