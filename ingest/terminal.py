"""Untrusted log text on a terminal: control, bidi and separator characters become visible escapes."""

from __future__ import annotations


def _escapes() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
    # Bidi and line/paragraph separators can reorder or break what a terminal shows.
    for c in [*range(0x200B, 0x2010), *range(0x2028, 0x202F), *range(0x2066, 0x206A), 0xFEFF]:
        table[c] = f"\\u{c:04x}"
    return table


_ESCAPES = _escapes()
# Only the C0 and C1 controls: what a terminal runs (escape sequences, bells, carriage returns).
CONTROL_ESCAPES = {chr(c): e for c, e in _ESCAPES.items() if c < 0xA0}


def neutralize(text: str) -> str:
    """Text safe for a terminal: control, bidi and separator characters become visible escapes."""
    return text.translate(_ESCAPES)


def neutralize_lines(text: str) -> str:
    """neutralize() each line of a report we compose ourselves, keeping its own newlines."""
    return "\n".join(neutralize(line) for line in text.split("\n"))
