"""Capacity units by AWS's documented rules: item sizes, read and write units, index writes, and
a scale model that turns units per RPC into units per second, hot keys and monthly cost."""
