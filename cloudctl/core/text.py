"""Text a person typed or a file carried, checked before it reaches a database or a terminal.

Names and codes are shown in terminals, spreadsheets and the big screen. A control character in
one (ESC starts a terminal escape sequence, NUL ends a C string and PostgreSQL refuses it, a
bidi override reorders what the reader sees) is never what the user meant, so it is refused
with the field's name rather than stored. Free text (descriptions, notes) may hold line breaks
and tabs, nothing else of the kind. SQLite and PostgreSQL then refuse the same strings.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

__all__ = ["BIDI_CONTROLS", "FreeText", "Line", "NoControl", "NoControlMultiline", "control_character",
           "escape_control", "refuse_control"]

# Unicode's explicit directional formatting characters (UAX #9): they reorder what a reader sees, the
# "Trojan Source" trick. Zero-width joiners and other format characters stay: Chinese and emoji text uses them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# Cc: C0, DEL and C1 controls (NUL and ESC among them); Cs: a lone surrogate, which no database encodes;
# Zl/Zp: line and paragraph separators, which break a one-line name as a newline would. One character class per
# case, so that a 4 KB scanner output is searched in C rather than character by character.
_BIDI_CLASS = "".join(f"\\u{ord(char):04x}" for char in sorted(BIDI_CONTROLS))
_MULTILINE = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ud800-\\udfff{_BIDI_CLASS}]")
_SINGLE_LINE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\u2028\\u2029{_BIDI_CLASS}]")


def control_character(value: str, *, multiline: bool = False) -> str | None:
    """The first character of ``value`` that text may not hold, described (``U+001B``), or None."""
    found = (_MULTILINE if multiline else _SINGLE_LINE).search(value)
    if found is None:
        return None
    char = found.group(0)
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


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
