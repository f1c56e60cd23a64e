"""Reading ARP and MAC tables over SSH with netmiko, parsed by ntc-templates; and the concurrent run over a fleet.

One SSH session per device: netmiko logs in, prepares the session as it would for any real device of that type
(prompt detection, paging off: ``screen-length 0 temporary`` on Huawei, ``screen-length disable`` on H3C Comware,
``terminal width 511`` + ``terminal length 0`` on Cisco IOS), then sends the two commands of ``COMMANDS`` with
``use_textfsm=True``. Every netmiko, paramiko, socket and TextFSM exception is turned into a ``ProviderError`` here.

Known gaps of the ntc-templates 9.3 templates, handled here or left visible:
- hp_comware ``display mac-address`` reads State as one word; Comware prints ``Config static`` in two, which
  shifts the columns (State=Config, Port=static, Aging=<port>). ``mac_entries`` puts them back.
- hp_comware ``display arp`` wants a number in Aging; Comware prints ``N/A`` for static entries, so the template
  drops static ARP rows. They are not recovered here (the raw text is not returned when parsing succeeds).
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
from ntc_templates.parse import ParsingException, parse_output
from textfsm import clitable  # type: ignore[import-untyped]
from textfsm import parser as textfsm_parser

from cloudctl.core.errors import CloudctlError, InvalidInput, ProviderError
from cloudctl.extranet.devices import (
    COMMANDS,
    ArpEntry,
    Device,
    DeviceCollector,
    DeviceTables,
    MacEntry,
    normalise_mac,
)

__all__ = ["NetmikoCollector", "arp_entries", "collect_all", "mac_entries"]

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
            return DeviceTables(device=device.name,
                                arp=arp_entries(device.device_type, self._rows(device, arp_command, arp_raw)),
                                mac=mac_entries(device.device_type, self._rows(device, mac_command, mac_raw)))
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

    @staticmethod
    def _rows(device: Device, command: str, output: str) -> list[dict[str, Any]]:
        """The output parsed with ntc-templates; no row is either an empty table (a quiet access switch) or
        not a table at all (a refused command, a banner): tell them apart here."""
        refusal = _REFUSALS.search(output)
        if refusal:
            line = output[refusal.start():].strip().splitlines()[0]
            raise ProviderError(f"the device refused {command!r}: {line}", field="device_type")
        try:
            rows: list[dict[str, Any]] = parse_output(platform=device.device_type, command=command, data=output)
        except ParsingException as exc:
            raise ProviderError(f"the output of {command!r} is not the table ntc-templates expects: "
                                f"{_first_line(exc)}") from None
        if rows:
            return rows
        if output.strip() and _looks_empty(output):  # blank output is no table at all (a stray prompt ended it)
            return []
        raise ProviderError(f"the output of {command!r} has no table rows: {_snippet(output)}")


def _looks_empty(output: str) -> bool:
    """An empty table: only headers, rules, legends and totals, no line that starts with an address."""
    return not any(re.match(r"\s*(?:\d+\.\d+\.\d+\.\d+|[0-9a-fA-F]{4}[-.][0-9a-fA-F]{4})", line)
                   for line in output.splitlines())


# -- rows → entries ------------------------------------------------------------------------------------------------


def arp_entries(device_type: str, rows: Iterable[Mapping[str, Any]]) -> list[ArpEntry]:
    """ntc-templates rows of the ARP command of ``device_type`` → ArpEntry (MAC normalised, VLAN an int or None).

    Unresolved entries (no MAC yet: Cisco ``Incomplete``, Huawei blank) are left out: they name no station.
    """
    entries: list[ArpEntry] = []
    for row in rows:
        mac_text = str(row.get("mac_address") or "").strip()
        if not mac_text or mac_text.lower() == "incomplete":
            continue
        interface = str(row.get("interface") or "").strip() or None
        if device_type == "huawei_vrp":
            own = str(row.get("type", "")).replace(" ", "").upper() == "I-"
            vlan = _vlan(str(row.get("vlan_id") or "").split("/")[0], row)
        elif device_type == "hp_comware":
            own = False  # Comware does not list its own interface addresses in `display arp`
            vlan = _vlan(str(row.get("vlan_id") or ""), row)
        elif device_type == "cisco_ios":
            own = str(row.get("age", "")).strip() == "-"
            vlan = None
        else:
            raise ProviderError(f"no ARP row mapping for device type {device_type!r}", field="device_type")
        if vlan is None and interface:
            svi = _SVI.fullmatch(interface)
            vlan = int(svi.group(1)) if svi else None
        entries.append(ArpEntry(ip=_ip(row), mac=_mac(mac_text, row), interface=interface, vlan=vlan, own=own))
    return entries


def mac_entries(device_type: str, rows: Iterable[Mapping[str, Any]]) -> list[MacEntry]:
    """ntc-templates rows of the MAC-table command of ``device_type`` → MacEntry; ``kind`` lower-cased."""
    entries: list[MacEntry] = []
    for row in rows:
        if device_type == "huawei_vrp":
            mac, vlan_text = row.get("destination_address"), row.get("vlan_id")
            port, kind = str(row.get("destination_port", "")), str(row.get("type", "")).lower()
        elif device_type == "hp_comware":
            mac, vlan_text = row.get("mac_address"), row.get("vlan_id")
            state, port = str(row.get("state", "")), str(row.get("interface", ""))
            if state.lower() == "config":  # "Config static" split by the template: the port went to Aging
                state, port = f"{state} {port}", str(row.get("aging", ""))
            kind = _COMWARE_STATES.get(state.lower(), state.lower())
        elif device_type == "cisco_ios":
            mac, vlan_text = row.get("destination_address"), row.get("vlan_id")
            ports = row.get("destination_port") or []
            port = ",".join(ports) if isinstance(ports, list) else str(ports)
            kind = str(row.get("type", "")).lower()
        else:
            raise ProviderError(f"no MAC row mapping for device type {device_type!r}", field="device_type")
        if not port:
            raise ProviderError(f"a MAC-table row has no port: {dict(row)}")
        entries.append(MacEntry(mac=_mac(str(mac or ""), row), vlan=_vlan(str(vlan_text or ""), row), port=port,
                                kind=kind))
    return entries


def _mac(text: str, row: Mapping[str, Any]) -> str:
    try:
        return normalise_mac(text)
    except InvalidInput:
        raise ProviderError(f"a row has {text!r} where a MAC address belongs: {dict(row)}", field="mac") from None


def _ip(row: Mapping[str, Any]) -> str:
    text = str(row.get("ip_address", "")).strip()
    if not re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", text):
        raise ProviderError(f"an ARP row has {text!r} where an IPv4 address belongs: {dict(row)}", field="ip")
    return text


def _vlan(text: str, row: Mapping[str, Any]) -> int | None:
    text = text.strip()
    if not text or text in {"-", "N/A", "All", "all"}:
        return None
    if not text.isdigit() or not 0 < int(text) < 4095:
        raise ProviderError(f"a row has {text!r} where a VLAN id belongs: {dict(row)}", field="vlan")
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
