"""Times for people: one display zone (``CLOUDCTL_DISPLAY_TIMEZONE``), always named beside the time.

Times are stored and exchanged in UTC (JSON says ISO 8601 with its offset); everything a person reads (a table, a
message, a report, an error) shows them here, in the configured zone, so that no screen mixes two zones and no time
is shown without its zone.
"""

from __future__ import annotations

from datetime import datetime

from cloudctl.core.config import get_settings

__all__ = ["local_time", "zone_label"]


def zone_label(at: datetime | None = None) -> str:
    """The display zone as people read it beside a time: ``UTC+08:00`` (at ``at``: a zone may change its offset)."""
    zone = get_settings().tz
    offset = (at.astimezone(zone) if at is not None else datetime.now(zone)).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def local_time(at: datetime, *, zone: bool = True, seconds: bool = False) -> str:
    """``2026-12-18 18:00 UTC+08:00``: ``at`` in the display zone, with the zone unless the reader is told once
    elsewhere (a table's caption)."""
    shown = at.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{shown} {zone_label(at)}" if zone else shown
