"""A bounded, loopback-only load and soak tool for user-service: ``python -m tools.load``."""
