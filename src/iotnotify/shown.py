"""Text from elsewhere (a peer's topic, a broker's reason string, an endpoint's or a proxy's answer)
as it may be shown on a terminal: control, format (bidi) and separator characters escaped as
Python writes them (backslash, x1b; backslash, u202e), and cut to a length a line can hold. Anyone who may
publish, or any server on the way, could otherwise retitle the terminal, move its cursor, reorder
what it shows or fill it."""

from __future__ import annotations

SHOWN = 200  # characters of one piece of remote text in a message; the rest is counted, not shown
LINE = 2000  # characters of one whole line on stderr


def escaped(text: str) -> str:
    """`text` with every character that is not printable (str.isprintable: categories C* and Z*
    but the space) written as its escape; a printable text as it is (the common case, in C)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(text: str, limit: int = SHOWN) -> str:
    """`text` escaped, and cut after `limit` characters with how much was left out."""
    if len(text) > limit:
        return escaped(text[:limit]) + f"... ({len(text) - limit} more characters)"
    return escaped(text)


def shown_bytes(data: bytes, limit: int = SHOWN) -> str:
    """Bytes from elsewhere (a status line, a body) as shown: UTF-8 where they are, escapes elsewhere."""
    text = data[: limit * 4].decode("utf-8", "backslashreplace")
    if len(text) <= limit and len(data) <= limit * 4:
        return escaped(text)
    return escaped(text[:limit]) + f"... ({len(data)} bytes in all)"
