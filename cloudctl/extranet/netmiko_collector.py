"""Reading ARP and MAC tables over SSH with netmiko, parsed by ntc-templates; and the concurrent run over a fleet.

One SSH session per device: netmiko logs in, prepares the session as it would for any real device of that type
(prompt detection, paging off: ``screen-length 0 temporary`` on Huawei, ``screen-length disable`` on H3C Comware,
``terminal width 511`` + ``terminal length 0`` on Cisco IOS), then sends the two commands of ``COMMANDS`` with
``use_textfsm=True``. Every netmiko, paramiko, socket and TextFSM exception is turned into a ``ProviderError`` here.

Each table is read row by row (:mod:`.tables`): a line the template cannot read, or a row the console cannot use
(a MAC entry without a port, an unresolved ARP entry), is skipped, counted and kept with its raw text; a device fails
only when nothing of its output can be read. Where ntc-templates 9.3 is wrong about a variant the vendors print,
``templates/`` holds a fixed copy (VRP V8 summary lines and MAC layout, Comware's static ARP entries); Comware's
``Config static`` read as two columns by the stock MAC template is put back together in ``mac_entries``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import paramiko  # type: ignore[import-untyped]  # no stubs; only its exception base is used
from netmiko import ConnectHandler
from netmiko.exceptions import (
    NetmikoAuthenticationException,
    NetmikoBaseException,
    NetmikoTimeoutException,
    ReadTimeout,
)
from textfsm import clitable  # type: ignore[import-untyped]
from textfsm import parser as textfsm_parser

from cloudctl.core.addresses import canonical_ipv4
from cloudctl.core.errors import CloudctlError, InvalidInput, ProviderError
from cloudctl.extranet.devices import (
    COMMANDS,
    ArpEntry,
    Device,
    DeviceCollector,
    DeviceTables,
    MacEntry,
    SkippedRow,
    normalise_mac,
)
from cloudctl.extranet.tables import parse_table, raw_line

__all__ = ["NetmikoCollector", "arp_entries", "collect_all", "mac_entries", "read_tables"]

OnResult = Callable[[Device, DeviceTables | None, str | None], None]

# What a device prints instead of a table when it refuses a command.
_REFUSALS = re.compile(r"^\s*(?:Error:|% ?Invalid input|% ?Unrecognized command|% ?Incomplete command|"
                       r"% ?Ambiguous command)", re.MULTILINE)
# A routed VLAN interface: its VLAN is the number in the name when the table has no VLAN column for the row.
_SVI = re.compile(r"(?:Vlanif|Vlan-interface|Vlan)(\d+)", re.IGNORECASE)
# H3C Comware's words for how an entry got into the MAC table.
_COMWARE_STATES = {"learned": "dynamic", "config static": "static", "config dynamic": "dynamic"}
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    NetmikoBaseException, paramiko.SSHException, OSError, EOFError, ValueError,
    textfsm_parser.Error, clitable.Error,
)


class NetmikoCollector:
    """A DeviceCollector over SSH with netmiko.

    ``read_timeout`` bounds every read (session preparation and each command); None uses each device's own
    ``timeout`` from the inventory. ``conn_timeout`` bounds the TCP connect, the SSH banner and authentication.
    """

    def __init__(self, *, conn_timeout: float = 10.0, read_timeout: float | None = None) -> None:
        if not conn_timeout > 0:
            raise InvalidInput(f"conn_timeout must be positive, not {conn_timeout}", field="conn_timeout")
        if read_timeout is not None and not read_timeout > 0:
            raise InvalidInput(f"read_timeout must be positive, not {read_timeout}", field="read_timeout")
        self.conn_timeout = conn_timeout
        self.read_timeout = read_timeout

    def __repr__(self) -> str:
        return f"NetmikoCollector(conn_timeout={self.conn_timeout:g}, read_timeout={self.read_timeout})"

    def collect(self, device: Device) -> DeviceTables:
        if device.device_type not in COMMANDS:
            raise ProviderError(f"{device.name}: no commands known for device type {device.device_type!r}",
                                field="device_type", device=device.name)
        arp_command, mac_command = COMMANDS[device.device_type]
        read_timeout = self.read_timeout if self.read_timeout is not None else device.timeout
        where = f"{device.name} ({device.device_type} {device.host}:{device.port})"
        try:
            # read_timeout_override bounds every read netmiko makes, including the fixed 10-20 s waits of session
            # preparation, so a device that stops answering costs read_timeout, not minutes.
            connection = ConnectHandler(device_type=device.device_type, host=device.host, port=device.port,
                                        username=device.username, password=device.password,
                                        conn_timeout=self.conn_timeout, auth_timeout=self.conn_timeout,
                                        banner_timeout=self.conn_timeout, read_timeout_override=read_timeout,
                                        allow_agent=False, use_keys=False)
            try:
                arp_raw = self._run(connection, arp_command, read_timeout)
                mac_raw = self._run(connection, mac_command, read_timeout)
            finally:
                self._logout(connection)
            return read_tables(device.name, device.device_type, arp_raw, mac_raw)
        except NetmikoAuthenticationException:
            raise ProviderError(f"{where}: authentication failed for user {device.username!r}",
                                field="password", device=device.name) from None
        except ReadTimeout:
            raise ProviderError(f"{where}: no complete answer within {read_timeout:g}s", field="timeout",
                                device=device.name) from None
        except NetmikoTimeoutException as exc:  # TCP refused/unreachable, SSH negotiation, no prompt
            raise ProviderError(f"{where}: {_first_line(exc) or 'connection timed out'}", field="host",
                                device=device.name) from None
        except CloudctlError as exc:  # our own parsing checks, below
            raise ProviderError(f"{where}: {exc.detail}", field=exc.field, device=device.name) from None
        except _NETWORK_ERRORS as exc:
            raise ProviderError(f"{where}: {type(exc).__name__}: {_first_line(exc)}", device=device.name) from None

    @staticmethod
    def _logout(connection: Any) -> None:
        """Say goodbye and close. Not netmiko's disconnect(): its cleanup first checks for config mode and then
        waits two seconds for the line to fall quiet, which was 80 % of every session; we never leave user view."""
        try:
            connection.write_channel("quit\n")
        except _NETWORK_ERRORS:
            pass  # the device already went away: closing is all that is left
        finally:
            connection.paramiko_cleanup()

    @staticmethod
    def _run(connection: Any, command: str, read_timeout: float) -> str:
        """The command's output: everything after its echo, up to the prompt that follows it.

        netmiko's send_command looks for the prompt anywhere in what it has read, so on a slow line
        a prompt left over from session preparation (the late answer to an Enter netmiko sent while
        waiting) ends the read before the table arrives: on Comware with 50 ms of latency that loses
        the table most of the time. A device answers in order, so the prompt that counts is the one
        after the echo of this command; the pattern asks for exactly that.
        """
        prompt = r"[\r\n]+[<\[]?" + re.escape(connection.base_prompt) + r"[^\r\n]*[>#\]]\s*$"
        echo = re.escape(command) + r"[^\n]*\n"
        connection.clear_buffer()
        connection.write_channel(connection.normalize_cmd(command))
        # No capturing group here: netmiko splits on the pattern and returns all up to and including it.
        read = connection.read_until_pattern(pattern=echo + r".*?" + prompt, read_timeout=read_timeout,
                                             re_flags=re.DOTALL)
        match = re.search(echo + r"(?P<body>.*?)" + prompt, read, re.DOTALL)
        return match.group("body").replace("\r", "") if match else ""


def read_tables(name: str, device_type: str, arp_output: str, mac_output: str) -> DeviceTables:
    """Both commands' output → the device's tables, every unusable row skipped and kept; ProviderError only when
    nothing of either output can be read."""
    skipped: list[SkippedRow] = []
    counts: dict[str, dict[str, int]] = {}
    failures: list[ProviderError] = []
    tables: dict[str, list[Any]] = {}
    for command, output, convert, keys in ((COMMANDS[device_type][0], arp_output, arp_entries, _ARP_KEYS),
                                           (COMMANDS[device_type][1], mac_output, mac_entries, _MAC_KEYS)):
        mine: list[SkippedRow] = []
        try:
            rows, unreadable = _rows(device_type, command, output)
            unreadable += _passed_over(output, rows, keys, unreadable)
        except ProviderError as exc:
            failures.append(exc)
            mine.append(SkippedRow(command, _snippet(output) or "(no output)", exc.detail))
            rows, unreadable = [], []
        mine.extend(SkippedRow(command, line.strip(), "the template cannot read this line") for line in unreadable)
        tables[command] = convert(device_type, rows, output=output, command=command, skipped=mine)
        counts[command] = {"parsed": len(tables[command]), "skipped": len(mine)}
        skipped.extend(mine)
    arp, mac = tables[COMMANDS[device_type][0]], tables[COMMANDS[device_type][1]]
    if failures and not arp and not mac:
        raise failures[0]
    return DeviceTables(device=name, arp=arp, mac=mac, counts=counts, skipped=skipped)


# The fields that name an entry, and what such a value looks like in a line: how a line the template passed over
# without a word (templates without an Error rule ignore what they do not match) is told from a legend or a total.
_ARP_KEYS = (("ip_address",), re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"))
_MAC_KEYS = (("destination_address", "mac_address"),
             re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{4}([-.])[0-9a-fA-F]{4}\1[0-9a-fA-F]{4}(?![0-9a-fA-F])"))


def _passed_over(output: str, rows: list[dict[str, Any]], keys: tuple[tuple[str, ...], re.Pattern[str]],
                 unreadable: list[str]) -> list[str]:
    """Lines holding an entry's address that no parsed row has: rows the template dropped silently."""
    fields, pattern = keys
    parsed = {str(row.get(name) or "").strip().lower() for row in rows for name in fields}
    set_aside = set(unreadable)
    return [line for line in output.splitlines() if line not in set_aside
            and (found := pattern.search(line)) is not None and found.group(0).lower() not in parsed]


def _rows(device_type: str, command: str, output: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The output parsed (rows, unreadable lines); no row is either an empty table (a quiet access switch) or
    not a table at all (a refused command, a banner): tell them apart here."""
    refusal = _REFUSALS.search(output)
    if refusal:
        line = output[refusal.start():].strip().splitlines()[0]
        raise ProviderError(f"the device refused {command!r}: {line}", field="device_type")
    parsed = parse_table(device_type, command, output)
    # Blank output is no table at all (a stray prompt ended the read); headers and totals alone are an empty one.
    if parsed.rows or (output.strip() and _looks_empty(output)):
        return parsed.rows, parsed.unreadable
    if parsed.unreadable:
        return [], parsed.unreadable
    raise ProviderError(f"the output of {command!r} has no table rows: {_snippet(output)}")


def _looks_empty(output: str) -> bool:
    """An empty table: only headers, rules, legends and totals, no line that starts with an address."""
    return not any(re.match(r"\s*(?:\d+\.\d+\.\d+\.\d+|[0-9a-fA-F]{4}[-.][0-9a-fA-F]{4})", line)
                   for line in output.splitlines())


# -- rows → entries ------------------------------------------------------------------------------------------------


def arp_entries(device_type: str, rows: Iterable[Mapping[str, Any]], *, output: str = "", command: str = "",
                skipped: list[SkippedRow] | None = None) -> list[ArpEntry]:
    """ntc-templates rows of the ARP command of ``device_type`` → ArpEntry (IP canonical, MAC normalised, VLAN
    an int or None). A row that names no station (Cisco ``Incomplete``, Huawei blank) or holds something that is
    not an address goes to ``skipped`` with its line of ``output``, and costs only itself."""
    if device_type not in COMMANDS:
        raise ProviderError(f"no ARP row mapping for device type {device_type!r}", field="device_type")
    entries: list[ArpEntry] = []
    for row in rows:
        try:
            entries.append(_arp_entry(device_type, row))
        except _Unusable as exc:
            if skipped is not None:
                line = raw_line(output, str(row.get("ip_address") or ""), str(row.get("mac_address") or ""))
                skipped.append(SkippedRow(command, line, str(exc)))
    return entries


def _arp_entry(device_type: str, row: Mapping[str, Any]) -> ArpEntry:
    mac_text = str(row.get("mac_address") or "").strip()
    if not mac_text or mac_text.lower() == "incomplete":
        raise _Unusable("unresolved: no MAC address yet")
    interface = str(row.get("interface") or "").strip() or None
    if device_type == "huawei_vrp":
        own = str(row.get("type", "")).replace(" ", "").upper() == "I-"
        vlan = _vlan(str(row.get("vlan_id") or "").split("/")[0])
    elif device_type == "hp_comware":
        own = False  # Comware does not list its own interface addresses in `display arp`
        vlan = _vlan(str(row.get("vlan_id") or ""))
    else:
        own = str(row.get("age", "")).strip() == "-"
        vlan = None
    if vlan is None and interface:
        svi = _SVI.fullmatch(interface)
        vlan = int(svi.group(1)) if svi and 0 < int(svi.group(1)) < 4095 else None
    return ArpEntry(ip=_ip(row), mac=_mac(mac_text), interface=interface, vlan=vlan, own=own)


def mac_entries(device_type: str, rows: Iterable[Mapping[str, Any]], *, output: str = "", command: str = "",
                skipped: list[SkippedRow] | None = None) -> list[MacEntry]:
    """ntc-templates rows of the MAC-table command of ``device_type`` → MacEntry; ``kind`` lower-cased. A row
    without a port (a static entry bound to no interface) or with a MAC or VLAN that is none goes to ``skipped``."""
    if device_type not in COMMANDS:
        raise ProviderError(f"no MAC row mapping for device type {device_type!r}", field="device_type")
    entries: list[MacEntry] = []
    for row in rows:
        try:
            entries.append(_mac_entry(device_type, row))
        except _Unusable as exc:
            if skipped is not None:
                mac = str(row.get("destination_address") or row.get("mac_address") or "")
                skipped.append(SkippedRow(command, raw_line(output, mac), str(exc)))
    return entries


def _mac_entry(device_type: str, row: Mapping[str, Any]) -> MacEntry:
    if device_type == "huawei_vrp":
        mac, vlan_text = row.get("destination_address"), row.get("vlan_id")
        port, kind = str(row.get("destination_port", "")), str(row.get("type", "")).lower()
    elif device_type == "hp_comware":
        mac, vlan_text = row.get("mac_address"), row.get("vlan_id")
        state, port = str(row.get("state", "")), str(row.get("interface", ""))
        if state.lower() == "config":  # "Config static" split by the template: the port went to Aging
            state, port = f"{state} {port}", str(row.get("aging", ""))
        kind = _COMWARE_STATES.get(state.lower(), state.lower())
    else:
        mac, vlan_text = row.get("destination_address"), row.get("vlan_id")
        ports = row.get("destination_port") or []
        port = ",".join(ports) if isinstance(ports, list) else str(ports)
        kind = str(row.get("type", "")).lower()
    if not port.strip():
        raise _Unusable("no port: an entry bound to no interface names no station's place")
    return MacEntry(mac=_mac(str(mac or "")), vlan=_vlan(str(vlan_text or "")), port=port.strip(), kind=kind)


class _Unusable(Exception):
    """A row the template read but the console cannot use; the reason is the message."""


def _mac(text: str) -> str:
    try:
        return normalise_mac(text)
    except InvalidInput:
        raise _Unusable(f"{text[:40]!r} is not a MAC address") from None


def _ip(row: Mapping[str, Any]) -> str:
    text = str(row.get("ip_address", "")).strip()
    found = canonical_ipv4(text)
    if found is None:
        raise _Unusable(f"{text[:40]!r} is not an IPv4 address")
    return found


def _vlan(text: str) -> int | None:
    text = text.strip()
    if not text or text in {"-", "N/A", "All", "all"}:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 4095:
        raise _Unusable(f"{text[:40]!r} is not a VLAN id")
    return int(text)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


# -- the fleet -----------------------------------------------------------------------------------------------------


def collect_all(devices: Sequence[Device], collector: DeviceCollector, *, max_workers: int = 32,
                on_result: OnResult | None = None) -> dict[str, DeviceTables | str]:
    """Collect every device, ``max_workers`` at a time: {device name: its tables, or the error text}.

    One device's failure is recorded and never stops the others. ``on_result(device, tables, error)`` is called
    once per device as it finishes, in the calling thread (so callers need no lock of their own).
    """
    if max_workers < 1:
        raise InvalidInput(f"max_workers must be at least 1, not {max_workers}", field="max_workers")
    names = [device.name for device in devices]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise InvalidInput(f"device {duplicate} is listed twice", field="devices")
    results: dict[str, DeviceTables | str] = {}
    if not devices:
        return results
    with ThreadPoolExecutor(max_workers=min(max_workers, len(devices)),
                            thread_name_prefix="extranet-collect") as pool:
        futures = {pool.submit(collector.collect, device): device for device in devices}
        for future in as_completed(futures):
            device = futures[future]
            tables: DeviceTables | None = None
            error: str | None = None
            try:
                tables = future.result()
            except CloudctlError as exc:
                error = exc.detail
            except Exception as exc:  # a collector's bug must not sink the fleet's run; keep it visible per device
                error = f"{type(exc).__name__}: {exc}"
            results[device.name] = tables if tables is not None else (error or "unknown error")
            if on_result is not None:
                on_result(device, tables, error)
    return results
