"""The data tools behind ``user-service export``, ``import`` and ``migrate``: each command
(``*_command.py``) with the table work it drives (``table_*.py``), the file format they share,
and the progress line."""
