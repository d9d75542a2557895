"""Capacity accounting in ``make bench``: the service's DynamoDB traffic recorded per RPC, its
units computed by tools.capacity, and checked against the issue's goals."""
