"""Text a person typed or a file carried, checked before it reaches a database or a terminal.

Names and codes are shown in terminals, spreadsheets and the big screen. A control character in
one (ESC starts a terminal escape sequence, NUL ends a C string and PostgreSQL refuses it, a
bidi override reorders what the reader sees) is never what the user meant, so it is refused
with the field's name rather than stored. Free text (descriptions, notes) may hold line breaks
and tabs, nothing else of the kind. SQLite and PostgreSQL then refuse the same strings.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

__all__ = ["BIDI_CONTROLS", "FreeText", "Line", "NoControl", "NoControlMultiline", "control_character",
           "escape_control", "refuse_control"]

# Unicode's explicit directional formatting characters (UAX #9): they reorder what a reader sees, the
# "Trojan Source" trick. Zero-width joiners and other format characters stay: Chinese and emoji text uses them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\n\r\t")


def control_character(value: str, *, multiline: bool = False) -> str | None:
    """The first character of ``value`` that text may not hold, described (``U+001B``), or None."""
    for char in value:
        if multiline and char in _LINE_BREAKS:
            continue
        category = unicodedata.category(char)
        # Cc: C0, DEL and C1 controls (NUL and ESC among them); Cs: a lone surrogate, which no database encodes;
        # Zl/Zp: line and paragraph separators, which break a one-line name as a newline would.
        if category in ("Cc", "Cs") or char in BIDI_CONTROLS or (not multiline and category in ("Zl", "Zp")):
            name = unicodedata.name(char, "")
            return f"U+{ord(char):04X}" + (f" {name}" if name else "")
    return None


def refuse_control(value: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or ValueError naming the control character (pydantic turns it into a field error)."""
    found = control_character(value, multiline=multiline)
    if found is not None:
        raise ValueError(f"must not contain control characters (found {found})")
    return value


def escape_control(value: str, *, multiline: bool = True) -> str:
    """``value`` with every character :func:`control_character` would name written as its escape (``\\x1b``).

    For evidence kept from outside (a scanner's plugin output quoting a banner): refusing a whole report for one
    escape sequence in it would lose more than it protects, and the escape still shows what was there.
    """
    if control_character(value, multiline=multiline) is None:
        return value
    return "".join(char if control_character(char, multiline=multiline) is None
                   else char.encode("unicode_escape").decode("ascii") for char in value)


def _single_line(value: Any) -> Any:
    return refuse_control(value) if isinstance(value, str) else value


def _multi_line(value: Any) -> Any:
    return refuse_control(value, multiline=True) if isinstance(value, str) else value


# Metadata for ``Annotated[str, StringConstraints(...), NoControl]``: mypy reads the alias, pydantic runs the check.
NoControl = AfterValidator(_single_line)
NoControlMultiline = AfterValidator(_multi_line)

# The common shapes, so schemas read ``note: FreeText`` rather than repeating constraints.
Line = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), NoControl]
FreeText = Annotated[str, StringConstraints(max_length=4000), NoControlMultiline]
