"""Text for the operator's terminal: columns that line up with Chinese and emoji (two
columns each), nothing a nickname could use to move the cursor or recolour the screen,
and times that say their zone."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from datetime import datetime

import wcwidth

ZERO_WIDTH_JOINER = "\u200d"  # holds emoji sequences such as 👨‍👩‍👧 together
ELLIPSIS = "…"


def printable(text: str) -> str:
    """`text` with control and format characters (escape sequences, newlines, bidi
    overrides) shown as `?`."""
    return "".join(
        "?" if unicodedata.category(ch) in ("Cc", "Cf") and ch != ZERO_WIDTH_JOINER else ch
        for ch in text
    )


def clip(text: str, columns: int) -> str:
    """`text` cut to `columns` display columns, ending in an ellipsis when cut."""
    if wcwidth.width(text) <= columns:
        return text
    return wcwidth.clip(text, 0, columns - 1).rstrip() + ELLIPSIS


def table(rows: Sequence[Sequence[str]], gap: str = "  ") -> Iterator[str]:
    """Rows of cells as lines whose columns line up on a terminal."""
    widths = [max(wcwidth.width(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (wcwidth.ljust(cell, width) for cell, width in zip(row, widths, strict=True))
        yield gap.join(cells).rstrip()


def local_time(timestamp: float) -> str:
    """E.g. `2026-11-25 10:00 UTC+08:00`: the machine's local time, saying which zone."""
    moment = datetime.fromtimestamp(timestamp).astimezone()
    offset = moment.strftime("%z")  # +0800
    return f"{moment:%Y-%m-%d %H:%M} UTC{offset[:3]}:{offset[3:]}"
