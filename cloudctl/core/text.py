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
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, StringConstraints

__all__ = ["BIDI_CONTROLS", "FreeText", "Line", "NoControl", "NoControlMultiline", "control_character",
           "escape_control", "escape_json_controls", "refuse_control", "visible"]

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


# What a terminal must never receive raw: C0 (but the breaks a caller keeps), DEL, C1, bidi controls, line and
# paragraph separators, lone surrogates. Text stored before names were checked may still hold them.
_UNSHOWN = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
_UNSHOWN_KEEPING = {keep: re.compile(f"[{_UNSHOWN}]" if not keep else
                                     f"(?![{re.escape(keep)}])[{_UNSHOWN}]") for keep in ("", "\n\t", "\n\r\t")}


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    # Unicode's control pictures (␛ for ESC, ␀ for NUL): one character for one, so table widths stay.
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def visible(value: str, *, keep: Literal["", "\n\t", "\n\r\t"] = "\n\t") -> str:
    """``value`` with every control character a terminal would act on replaced by a visible stand-in
    (U+241B for ESC, U+FFFD for C1 and bidi controls), except the breaks in ``keep`` ("", "\\n\\t" or
    "\\n\\r\\t")."""
    return _UNSHOWN_KEEPING[keep].sub(_picture, value)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def escape_json_controls(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``, which escapes only C0) with DEL, C1 and bidi
    controls escaped as ``\\uXXXX`` too: still the same JSON, and nothing in it a terminal acts on."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
