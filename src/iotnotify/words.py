"""Counts in sentences: "1 message", "2 messages" (a leaf, importing nothing: the agent's quick
path uses it)."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, plural unless `count` is 1 (`plural` if it is not NOUN + s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def was(count: int) -> str:
    """The verb after `count` things: "was" for 1, else "were"."""
    return "was" if count == 1 else "were"
