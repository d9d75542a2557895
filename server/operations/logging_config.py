"""Log lines as JSON objects or readable text, on one stream, with a level per logger."""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from server.interceptors.request_id import current_request_id
from server.operations.wire_log_redaction import install_record_redaction

LogFormat = Literal["json", "text"]

# Libraries that narrate every request at INFO; their warnings still show. A level given for one
# of them in USER_SERVICE_LOG_LEVELS wins.
CHATTY_LOGGERS = ("botocore", "aiobotocore", "werkzeug", "urllib3")

# What every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def configure_logging(
    level: str,
    *,
    log_format: LogFormat = "text",
    levels: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Replaces the root logger's handlers with one writing to ``stream`` (default: stdout).

    ``level`` is the root level; ``levels`` sets single loggers (their children follow). The
    handler is returned so that tests can inspect or remove it. From then on every log record
    of the process is stripped of secrets when it is made (server.operations.wire_log_redaction),
    whatever its logger and level.
    """
    install_record_redaction()
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    quiet = logging.getLogger().getEffectiveLevel() > logging.DEBUG
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    for name, logger_level in (levels or {}).items():
        logging.getLogger(name).setLevel(logger_level)
    return handler


class RequestIdFilter(logging.Filter):
    """Adds the id of the RPC being served (if any) to each record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def _utc_timestamp(created: float) -> str:
    """2026-11-26T09:08:42.123Z"""
    seconds = int(created)
    milliseconds = int((created - seconds) * 1000)
    return f"{_utc_second(seconds)}.{milliseconds:03d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    # Every access line formats a time; the lines of one second share this part (strftime showed
    # in profiles of a busy server).
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


# json.dumps(entry, default=str) builds this encoder anew for every line.
_JSON = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Anything else on the record came from ``extra=`` (or a filter) and is a field; a field
        # never hides the four above.
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            # exc_text first: the redacted text, when the record factory made one.
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii (the default) escapes every control character: one record, one line.
        return _JSON.encode(entry)


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message> request_id=<id>``, then any exception; an
    access line of a traced call ends with ``trace_id=<32 hex> span_id=<16 hex>``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_timestamp(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line = f"{line} request_id={request_id}"
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:
            line = f"{line} trace_id={trace_id} span_id={getattr(record, 'span_id', '')}"
        return line
