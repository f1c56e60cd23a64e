"""A device's table output read row by row: one line the template cannot read costs that line, not the table.

ntc-templates parses each command's output; its templates end in ``^. -> Error``, so one line they do not know (a
summary line a newer release added, a static entry without a port) raises and, read as one block, loses every row
of the table. Here such a line is set aside with the reason, the rest is parsed again, and the set-aside lines go
back to the operator (``extranet devices --skipped``). Where the template itself is wrong about a variant the
vendors really print, a fixed copy in ``templates/`` beside this module is used instead (each says what it fixes).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import textfsm  # type: ignore[import-untyped]
from ntc_templates.parse import ParsingException, parse_output
from textfsm import clitable

from cloudctl.core.errors import ProviderError

__all__ = ["LOCAL_TEMPLATES", "MAX_UNREADABLE", "ParsedTable", "parse_table", "raw_line"]

# (platform, command) → a fixed template of our own; see each file's first lines for what it fixes.
LOCAL_TEMPLATES: dict[tuple[str, str], str] = {
    ("huawei_vrp", "display arp brief"): "huawei_vrp_display_arp_brief.textfsm",
    ("huawei_vrp", "display mac-address"): "huawei_vrp_display_mac-address.textfsm",
    ("hp_comware", "display arp"): "hp_comware_display_arp.textfsm",
}
# Lines set aside before a table counts as unreadable altogether (each costs one more parse of the output).
MAX_UNREADABLE = 64
_INPUT_LINE = re.compile(r"Input Line: (?P<line>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedTable:
    """The template's rows (keys lower-case, as ntc-templates gives them) and the lines it could not read."""

    rows: list[dict[str, Any]]
    unreadable: list[str] = field(default_factory=list)


def parse_table(platform: str, command: str, output: str) -> ParsedTable:
    """Parse ``output``; a line the template raises on is set aside and the rest parsed again.

    ProviderError when there is no template for the command, or when more than ``MAX_UNREADABLE`` lines are
    unreadable (the output is some other table, or none).
    """
    parse = _parser(platform, command)
    lines = output.splitlines()
    unreadable: list[str] = []
    while True:
        try:
            return ParsedTable(parse("\n".join(lines) + "\n"), unreadable)
        except textfsm.parser.TextFSMError as exc:
            match = _INPUT_LINE.search(str(exc))
            line = match.group("line") if match else None
            if line is None or line not in lines or len(unreadable) >= MAX_UNREADABLE:
                raise ProviderError(f"the output of {command!r} is not the table its template reads: "
                                    f"{_snippet(line or str(exc))}") from None
            lines.remove(line)
            unreadable.append(line)


def raw_line(output: str, *needles: str) -> str:
    """The first line of ``output`` holding every one of ``needles``: the row an entry was read from."""
    wanted = [n for n in needles if n]
    for line in output.splitlines():
        if all(n in line for n in wanted):
            return line.strip()
    return " ".join(wanted)


def _parser(platform: str, command: str) -> Callable[[str], list[dict[str, Any]]]:
    local = LOCAL_TEMPLATES.get((platform, command))
    if local is not None:
        template = _local_template(local)

        def parse_local(text: str) -> list[dict[str, Any]]:
            fsm = textfsm.TextFSM(io.StringIO(template))
            return [{key.lower(): value for key, value in row.items()} for row in fsm.ParseTextToDicts(text)]

        return parse_local

    def parse_stock(text: str) -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = parse_output(platform=platform, command=command, data=text)
        except (ParsingException, clitable.CliTableError) as exc:
            raise ProviderError(f"ntc-templates has no template for {command!r} on {platform}: {exc}") from None
        return rows

    return parse_stock


@cache
def _local_template(name: str) -> str:
    return resources.files("cloudctl.extranet").joinpath(f"templates/{name}").read_text(encoding="utf-8")


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
