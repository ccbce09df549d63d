"""One reading of true and false for every setting written as text: the words click accepts for
a flag's environment variable, so IOTNOTIFY_NO_CACHE (the CLI) and IOTNOTIFY_ANY_CLIENT_ID (the
Lambda, which has no click) agree. A test keeps the two in step."""

from __future__ import annotations

TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE = frozenset({"", "0", "false", "f", "no", "n", "off"})


def parse_bool(text: str) -> bool:
    """`text` as a boolean (case and surrounding spaces ignored); ValueError if it is neither."""
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError(f"{text!r} is not true or false (say {', '.join(sorted(TRUE))}; or {', '.join(sorted(FALSE - {''}))})")
