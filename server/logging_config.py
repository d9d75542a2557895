"""Plain, readable log lines on stderr, at the level the settings ask for."""

from __future__ import annotations

import logging
import sys

# Libraries that narrate every request at INFO; their warnings still show.
_CHATTY_LOGGERS = ("botocore", "aiobotocore", "werkzeug", "urllib3")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
