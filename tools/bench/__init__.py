"""The side-by-side benchmark of user-service against the floor: ``python -m tools.bench``."""
