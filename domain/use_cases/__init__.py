"""The use cases, one module per section of the API: accounts, sessions, passwords, events.

Each takes primitives and ports, validates its inputs (validation.py), drives the User
aggregate and commits one unit of work, re-applied on a conflict (retry.py).
"""
