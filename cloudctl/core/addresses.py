"""IP addresses in one spelling, whoever wrote them: a scanner, a device's ARP table, a person.

``2001:DB8::1`` and ``2001:db8:0::1`` are one address, and so are ``010.001.002.003`` (as some devices and
exports pad octets) and ``10.1.2.3``. Every record keyed by an address stores this spelling, so a lookup, a
unique constraint and a "was this host in the scan" question all see one address as one.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["canonical_ip", "canonical_ipv4"]

_PADDED_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def canonical_ip(text: str) -> str | None:
    """The address's one spelling (IPv6 compressed and lower-case, IPv4 without leading zeros), or None."""
    text = text.strip()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        pass
    # Python refuses leading zeros (they mean octal to some parsers); the devices and exports that print them
    # mean decimal.
    if _PADDED_IPV4.fullmatch(text):
        octets = [int(part) for part in text.split(".")]
        if all(octet <= 255 for octet in octets):
            return ".".join(map(str, octets))
    return None


def canonical_ipv4(text: str) -> str | None:
    """As :func:`canonical_ip`, for an IPv4 address only."""
    found = canonical_ip(text)
    return found if found is not None and ":" not in found else None
