"""Lets ``python -m server`` run the command line."""

from __future__ import annotations

import sys

from server.cli import main

sys.exit(main())
