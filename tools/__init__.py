"""Developer tools that work on the service from outside; not part of the shipped image."""
