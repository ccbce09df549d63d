"""Formatting received messages and reading input lines (pure functions)."""

import base64
import io
import json

from iotnotify.messages import Message
from iotnotify.output import OutputStyle, formatter
from iotnotify.payloads import read_lines
from iotnotify.times import iso

format_raw = formatter(OutputStyle())
format_verbose = formatter(OutputStyle(verbose=True))
format_json = formatter(OutputStyle(json_lines=True))

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
    assert iso(0.5, milliseconds=True) == "1970-01-01T00:00:00.500Z"


def test_read_lines_strips_lf_and_crlf_and_keeps_a_last_line_without_newline():
    assert list(read_lines(io.BytesIO(b"a\nb\r\n\nlast"))) == [b"a", b"b", b"", b"last"]


import pytest  # noqa: E402

from iotnotify.errors import UsageError  # noqa: E402
from iotnotify.output import check_template, compact_json, preview  # noqa: E402

JSON_MESSAGE = Message("s/1", b'{ "t": 21.5,\n  "ok": true }', 1, False, 0.25)


@pytest.mark.parametrize("template, expected", [
    ("{topic}", b"s/1"),
    ("{payload}", b'{ "t": 21.5,\n  "ok": true }'),
    ("{qos}/{retain}", b"1/false"),
    ("{time}", b"1970-01-01T00:00:00.250Z"),
    ("{json}", b'{"t":21.5,"ok":true}'),
    ("{base64}", base64.b64encode(JSON_MESSAGE.payload)),
    ("{hex}", JSON_MESSAGE.payload.hex().encode()),
    ("{{literal}} {topic}", b"{literal} s/1"),
])
def test_template_fields(template, expected):
    assert formatter(OutputStyle(template=template))(JSON_MESSAGE) == expected + b"\n"


def test_template_keeps_binary_payload_bytes():
    assert formatter(OutputStyle(template="<{payload}>"))(Message("t", b"\xff\x00")) == b"<\xff\x00>\n"


@pytest.mark.parametrize("template, message", [("{nope}", "unknown field {nope}"), ("{topic", "--format")])
def test_bad_templates_are_usage_errors(template, message):
    with pytest.raises(UsageError, match=message):
        check_template(template)


@pytest.mark.parametrize("payload, expected", [
    (b'{"a": [1, 2]}', '{"a":[1,2]}'), (b"42", "42"), (b"plain text", '"plain text"'), (b"\xff", '"\ufffd"')])
def test_json_field_re_encodes_compactly(payload, expected):
    assert compact_json(payload) == expected


def test_pretty_indents_json_payloads_only():
    pretty = formatter(OutputStyle(pretty=True))
    assert pretty(Message("t", b'{"a":1}')) == b'{\n  "a": 1\n}\n'
    assert pretty(Message("t", b"not json")) == b"not json\n"


def test_no_newline():
    assert formatter(OutputStyle(end=b""))(MESSAGE) == b"hello"
    assert formatter(OutputStyle(verbose=True, end=b""))(MESSAGE) == b"a/b hello"


def test_preview_compacts_json_cuts_long_text_and_shows_binary_as_bytes():
    assert preview(JSON_MESSAGE.payload, 80) == ('{"t":21.5,"ok":true}', "json")
    assert preview(b"x" * 100, 10) == ("x" * 9 + "…", "text")
    assert preview(b"two\nlines", 80) == ("two lines", "text")
    text, kind = preview(bytes(range(200, 256)), 40)
    assert kind == "binary" and text.startswith("<56 bytes> c8 c9 ca")


def test_iso_milliseconds_of_epoch_seconds_match_datetimes_own() -> None:
    """times.iso reuses the text of the second before for epoch seconds (subscribe --json's speed):
    the same text as datetime's formatting, rounding included, around second boundaries too."""
    import datetime as dt
    import random

    from iotnotify.times import iso

    def by_datetime(moment: float) -> str:
        value = dt.datetime.fromtimestamp(moment, dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"

    rng = random.Random(15)
    moments = [rng.uniform(0, 4e9) for _ in range(20000)]
    moments += [1764000000 + n + edge for n in range(50) for edge in (0, 0.0005, 0.9995, 0.9999994, 0.9999996)]
    assert [iso(m, milliseconds=True) for m in moments] == [by_datetime(m) for m in moments]


def test_json_lines_are_what_json_dumps_writes() -> None:
    import json

    from iotnotify.output import OutputStyle, as_record, formatter
    from iotnotify.properties import Properties

    messages = [Message("t/ü", "héllo ✓".encode(), 1, True), Message("t", b"\xff\x00", 0, False),
                Message("t", b'{"a": [1, 2]}', properties=Properties(user_properties=(("k", "v"), ("k", "w")),
                                                                       correlation_data=b"\x01"))]
    render = formatter(OutputStyle(json_lines=True))
    for message in messages:
        assert render(message) == json.dumps(as_record(message), ensure_ascii=False).encode() + b"\n"


def test_only_concatenated_output_is_written_by_the_receiving_thread():
    """subscribe writes in awscrt's thread only what renders by concatenation; --json, --pretty and
    templates go through the queue to the main thread (bench/README.md, Round two, 7)."""
    from iotnotify.output import OutputStyle

    assert OutputStyle().cheap and OutputStyle(verbose=True, end=b"").cheap
    assert not any(style.cheap for style in (OutputStyle(json_lines=True), OutputStyle(pretty=True),
                                             OutputStyle(template="{topic}")))
