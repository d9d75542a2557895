"""Log lines: JSON objects or readable text, a level per logger, the request id of the call."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from server.interceptors.request_id import current_request_id
from server.operations.logging_config import CHATTY_LOGGERS, configure_logging
from server.settings import Settings, describe_invalid_settings

TOUCHED_LOGGERS = (
    "",
    *CHATTY_LOGGERS,
    "app",
    "app.noisy",
    "app.noisy.child",
    "user_service.access",
)


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put the root's handlers and levels back."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name or None).level for name in TOUCHED_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_format_writes_one_parsable_object_per_line_with_time_level_logger_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", stream=stream)
    before = datetime.now(UTC)

    logging.getLogger("app").info("user %s signed in", "42", extra={"method": "/x.Y/Z", "code": 3})

    [line] = lines_of(stream)
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "app"
    assert entry["message"] == "user 42 signed in"
    assert (entry["method"], entry["code"]) == ("/x.Y/Z", 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    logged = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= logged <= datetime.now(UTC)
    assert "request_id" not in entry  # outside any call


def test_a_field_named_like_a_standard_key_does_not_replace_it() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", stream=stream)

    logging.getLogger("app").info("real", extra={"level": "forged", "logger": "x", "time": "0"})

    entry = json.loads(lines_of(stream)[0])
    assert (entry["level"], entry["logger"], entry["message"]) == ("INFO", "app", "real")
    assert entry["time"] != "0"


def test_json_format_keeps_a_record_with_newlines_and_an_exception_on_one_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", stream=stream)

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("app").exception("failed\nsecond line\x1b[31m")

    [line] = lines_of(stream)
    entry = json.loads(line)
    assert entry["message"] == "failed\nsecond line\x1b[31m"
    assert "Traceback" in entry["exception"] and "RuntimeError: boom" in entry["exception"]
    assert entry["level"] == "ERROR"


def test_a_line_written_during_a_call_carries_its_request_id_in_either_format() -> None:
    json_stream, text_stream = io.StringIO(), io.StringIO()
    configure_logging("INFO", log_format="json", stream=json_stream)
    json_handler = logging.getLogger().handlers[0]
    text_handler = configure_logging("INFO", log_format="text", stream=text_stream)
    logging.getLogger().addHandler(json_handler)

    token = current_request_id.set("req-123")
    try:
        logging.getLogger("app").warning("storage unavailable")
    finally:
        current_request_id.reset(token)
    logging.getLogger("app").warning("after the call")

    first, second = (json.loads(line) for line in lines_of(json_stream))
    assert first["request_id"] == "req-123" and "request_id" not in second
    text_first, text_second = lines_of(text_stream)
    assert text_first.endswith("WARNING app: storage unavailable request_id=req-123")
    assert text_second.endswith("WARNING app: after the call")
    assert text_handler is not json_handler


def test_a_traced_access_line_ends_with_its_trace_and_span_ids_in_text() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="text", stream=stream)
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    token = current_request_id.set("req-7")
    try:
        logging.getLogger("user_service.access").info(
            "GetUser OK", extra={"trace_id": trace_id, "span_id": span_id}
        )
    finally:
        current_request_id.reset(token)

    [line] = lines_of(stream)
    assert line.endswith(f"GetUser OK request_id=req-7 trace_id={trace_id} span_id={span_id}")


def test_text_format_is_one_readable_line_with_utc_time_level_and_logger() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="text", stream=stream)

    logging.getLogger("app").info("listening on %s", "127.0.0.1:50051")

    [line] = lines_of(stream)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO app: listening on 127\.0\.0\.1:50051", line
    ), line


def test_a_level_per_logger_applies_to_it_and_its_children_only() -> None:
    stream = io.StringIO()
    configure_logging(
        "WARNING",
        log_format="json",
        levels={"app.noisy": "ERROR", "user_service.access": "DEBUG"},
        stream=stream,
    )

    logging.getLogger("app").warning("kept: root level")
    logging.getLogger("app").info("dropped: below the root level")
    logging.getLogger("app.noisy.child").warning("dropped: its parent says ERROR")
    logging.getLogger("app.noisy.child").error("kept: error")
    logging.getLogger("user_service.access").debug("kept: access at DEBUG")

    messages = [json.loads(line)["message"] for line in lines_of(stream)]
    assert messages == ["kept: root level", "kept: error", "kept: access at DEBUG"]


def test_chatty_libraries_stay_at_warning_unless_a_level_is_given_for_them() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", levels={"urllib3": "DEBUG"}, stream=stream)

    logging.getLogger("botocore.endpoint").info("dropped: botocore narrates every request")
    logging.getLogger("botocore.endpoint").warning("kept: a botocore warning")
    logging.getLogger("urllib3.connectionpool").debug("kept: asked for")

    messages = [json.loads(line)["message"] for line in lines_of(stream)]
    assert messages == ["kept: a botocore warning", "kept: asked for"]


def test_at_debug_the_chatty_libraries_speak_again_after_a_quieter_configuration() -> None:
    configure_logging("INFO", stream=io.StringIO())
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)

    logging.getLogger("botocore.endpoint").debug("request sent")

    assert lines_of(stream)[-1].endswith("DEBUG botocore.endpoint: request sent")


def test_the_log_format_is_json_in_production_and_text_in_development_by_default() -> None:
    assert Settings(profile="production").log_format_kind == "json"
    assert Settings(profile="development").log_format_kind == "text"
    assert Settings(profile="production", log_format="text").log_format_kind == "text"


def test_logger_levels_are_read_from_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SERVICE_LOG_LEVELS", " botocore=debug , user_service.access=WARNING,")

    assert Settings().log_levels == {"botocore": "DEBUG", "user_service.access": "WARNING"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("botocore", "'botocore' is not logger=LEVEL"),
        ("botocore=LOUD", "the level of botocore must be one of DEBUG, INFO"),
        ("bad name=INFO", "'bad name' is not a logger name"),
        ("=INFO", "'' is not a logger name"),
    ],
)
def test_an_invalid_logger_level_stops_start_up_with_a_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("USER_SERVICE_LOG_LEVELS", value)

    with pytest.raises(ValidationError) as raised:
        Settings()

    message = describe_invalid_settings(raised.value)
    assert message.startswith("invalid setting USER_SERVICE_LOG_LEVELS: "), message
    assert problem in message


def test_an_unknown_log_format_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SERVICE_LOG_FORMAT", "xml")

    with pytest.raises(ValidationError) as raised:
        Settings()

    assert describe_invalid_settings(raised.value).startswith(
        "invalid setting USER_SERVICE_LOG_FORMAT: "
    )
