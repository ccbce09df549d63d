"""Formatting received messages and reading input lines (pure functions)."""

import base64
import io
import json

from iotnotify.messages import Message, read_lines
from iotnotify.output import format_json, format_raw, format_verbose, iso_time

MESSAGE = Message("a/b", b"hello", 1, True, 1795545600.1234)


def test_raw_is_the_payload_and_a_newline():
    assert format_raw(MESSAGE) == b"hello\n"


def test_verbose_puts_the_topic_first():
    assert format_verbose(MESSAGE) == b"a/b hello\n"


def test_json_line_fields():
    assert json.loads(format_json(MESSAGE)) == {
        "topic": "a/b", "payload": "hello", "qos": 1, "retain": True, "time": "2026-11-24T18:40:00.123Z"}


def test_json_line_of_binary_payload_is_base64():
    record = json.loads(format_json(Message("t", b"\xff\x00\xfe", 0, False, 0)))
    assert record["encoding"] == "base64" and base64.b64decode(record["payload"]) == b"\xff\x00\xfe"


def test_json_line_keeps_unicode_readable_and_on_one_line():
    line = format_json(Message("t", "ünï\ncode".encode(), 0, False, 0))
    assert line.count(b"\n") == 1 and "ünï".encode() in line


def test_iso_time_has_milliseconds_and_z():
    assert iso_time(0.5) == "1970-01-01T00:00:00.500Z"


def test_read_lines_strips_lf_and_crlf_and_keeps_a_last_line_without_newline():
    assert list(read_lines(io.BytesIO(b"a\nb\r\n\nlast"))) == [b"a", b"b", b"", b"last"]
