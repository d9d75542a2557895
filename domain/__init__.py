"""The user-account domain: the User aggregate, its value objects, ports and use cases."""
