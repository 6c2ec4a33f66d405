"""Words for messages: a long text cut where a reader can follow it."""

from __future__ import annotations


def cut_at_word(text: str, limit: int, mark: str = " ...") -> str:
    """``text`` if it is at most ``limit`` characters, else cut at the last space before ``limit``
    (trailing punctuation that opens a clause dropped) and ended with ``mark``."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(mark))]
    head = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return head.rstrip(" ,;:(") + mark
