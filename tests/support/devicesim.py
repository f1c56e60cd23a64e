"""Simulated Huawei VRP, H3C Comware and Cisco IOS switches that netmiko logs into over real SSH (asyncssh).

Each simulated device has the prompts, paging and error messages of its vendor, and prints its ARP and MAC
tables in the vendor's own layout, so that netmiko's session preparation and ntc-templates' parsing run exactly
as against a real device:

- Huawei VRP: ``<name>`` / ``[name]``; ``screen-length 0 temporary`` turns paging off; ``display arp brief``,
  ``display mac-address``; ``Error: Unrecognized command found at '^' position.``; ``quit`` logs out.
- H3C Comware 7: ``<name>`` / ``[name]``; ``screen-length disable``; ``display arp``, ``display mac-address``;
  `` % Unrecognized command found at '^' position.``; ``quit``.
- Cisco IOS: ``name#`` (``name>`` after ``disable``; ``enable`` asks for the password); ``terminal length 0``,
  ``terminal width 511``; ``show ip arp``, ``show mac address-table``; ``% Invalid input detected at '^'
  marker.``; ``exit``.

Until paging is turned off, output longer than 24 lines stops at ``  ---- More ----`` (Huawei, H3C) or
`` --More-- `` (Cisco) and waits for a key: space for a page, Enter for a line, anything else ends the output.
Commands may be abbreviated word by word, as on the devices (``dis mac``).

One listening port per device, all on 127.0.0.1, in one asyncio loop on a background thread: devices are told
apart by address, like real ones, so the collector needs nothing simulator-specific; 1,600 listeners cost one
file descriptor each and nothing while idle.

    with DeviceSimulator([SimDevice("core-01", "huawei_vrp", arp=[...], mac=[...])]) as sim:
        host, port = sim.address("core-01")

``latency`` delays the answer to each line the device receives (an empty Enter included), after the echo; input
typed meanwhile waits, as on a real terminal line.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import asyncssh

__all__ = ["ArpRow", "DeviceSimulator", "MacRow", "SimDevice", "Vendor", "render", "vendor_mac"]

Vendor = Literal["huawei_vrp", "hp_comware", "cisco_ios"]
PAGE_LINES = 24
_MORE = {"huawei_vrp": "  ---- More ----", "hp_comware": "---- More ----", "cisco_ios": " --More-- "}
# How Huawei and H3C wipe the More prompt after a key: cursor back, blanks, cursor back.
_ERASE = "\x1b[16D                \x1b[16D"


@dataclass(frozen=True)
class ArpRow:
    ip: str
    mac: str  # any notation; printed in the vendor's
    interface: str | None
    vlan: int | None = None
    own: bool = False  # the device's own interface address
    static: bool = False


@dataclass(frozen=True)
class MacRow:
    mac: str
    vlan: int | None
    port: str
    kind: str = "dynamic"  # dynamic, static, blackhole, security, sticky, …


@dataclass
class SimDevice:
    name: str
    vendor: Vendor
    arp: list[ArpRow] = field(default_factory=list)
    mac: list[MacRow] = field(default_factory=list)
    username: str = "netops"
    password: str = "Sim-Passw0rd!"  # a throw-away device's
    latency: float = 0.0
    # Lines a release prints after a table ("arp" or "mac"), e.g. VRP V8's second summary line.
    after: dict[str, str] = field(default_factory=dict)


def _hex(mac: str) -> str:
    digits = "".join(c for c in mac.lower() if c in "0123456789abcdef")
    if len(digits) != 12:
        raise ValueError(f"{mac!r} is not a MAC address")
    return digits


def vendor_mac(vendor: str, mac: str) -> str:
    """A MAC in the vendor's notation: aabb-ccdd-eeff (Huawei, H3C) or aabb.ccdd.eeff (Cisco)."""
    digits = _hex(mac)
    sep = "." if vendor == "cisco_ios" else "-"
    return sep.join((digits[0:4], digits[4:8], digits[8:12]))


# -- the tables, in each vendor's layout -------------------------------------------------------------------------


def render(vendor: str, table: Literal["arp", "mac"], rows: Sequence[ArpRow] | Sequence[MacRow]) -> str:
    """The output of the vendor's ARP or MAC command for these rows ("\\n" line ends, no prompt)."""
    renderers = {("huawei_vrp", "arp"): _huawei_arp, ("huawei_vrp", "mac"): _huawei_mac,
                 ("hp_comware", "arp"): _comware_arp, ("hp_comware", "mac"): _comware_mac,
                 ("cisco_ios", "arp"): _cisco_arp, ("cisco_ios", "mac"): _cisco_mac}
    try:
        renderer = renderers[(vendor, table)]
    except KeyError:
        raise ValueError(f"no {table} table for vendor {vendor!r}") from None
    return "\n".join(renderer(list(rows)))  # type: ignore[operator]


def _huawei_arp(rows: list[ArpRow]) -> list[str]:
    rule = "-" * 78
    lines = ["IP ADDRESS      MAC ADDRESS    EXPIRE(M) TYPE  INTERFACE           VLAN/CEVLAN  PVC", rule]
    counts = {"I": 0, "D": 0, "S": 0}
    for number, row in enumerate(rows):
        kind = "I -" if row.own else "S-" if row.static else "D-0"
        counts[kind[0]] += 1
        expire = "" if row.own or row.static else str(5 + number % 15)
        vlan = f"{row.vlan}/-" if row.vlan is not None else ""
        mac = vendor_mac("huawei_vrp", row.mac)
        line = f"{row.ip:<16}{mac:<15}{expire:<10}{kind:<6}{row.interface or '':<22} {vlan}"
        lines.append(line.rstrip())
    lines.append(rule)
    lines.append(f"{'Total:' + str(len(rows)):<16}{'Dynamic:' + str(counts['D']):<16}"
                 f"{'Static:' + str(counts['S']):<13}Interface:{counts['I']}")
    return lines


def _huawei_mac(rows: list[MacRow]) -> list[str]:
    rule = "-" * 79
    lines = [rule, "MAC Address    VLAN/VSI/BD                       Learned-From        Type", rule]
    for row in rows:
        if row.vlan is None:
            raise ValueError("Huawei prints a VLAN for every MAC entry")
        lines.append(f"{vendor_mac('huawei_vrp', row.mac):<15}{str(row.vlan) + '/-/-':<34}{row.port:<19} {row.kind}")
    lines += ["", rule, f"Total items displayed = {len(rows)}"]
    return lines


def _comware_arp(rows: list[ArpRow]) -> list[str]:
    lines = ["  Type: S-Static   D-Dynamic   O-Openflow   R-Rule   M-Multiport  I-Invalid",
             "IP address      MAC address    VLAN/VSI name Interface                Aging Type"]
    for number, row in enumerate(rows):
        if row.own:
            raise ValueError("Comware does not list its own interface addresses in `display arp`")
        vlan = "N/A" if row.vlan is None else str(row.vlan)
        aging, kind = ("N/A", "S") if row.static else (str(2 + number % 18), "D")
        lines.append(f"{row.ip:<16}{vendor_mac('hp_comware', row.mac):<15}{vlan:<14}{row.interface or '':<24} "
                     f"{aging:<6}{kind}")
    return lines


_COMWARE_STATE = {"dynamic": "Learned", "static": "Config static"}


def _comware_mac(rows: list[MacRow]) -> list[str]:
    lines = ["MAC Address      VLAN ID    State            Port/Nickname            Aging"]
    for row in rows:
        if row.vlan is None:
            raise ValueError("Comware prints a VLAN for every MAC entry")
        state = _COMWARE_STATE.get(row.kind, row.kind.capitalize())
        aging = "Y" if state == "Learned" else "N"
        lines.append(f"{vendor_mac('hp_comware', row.mac):<17}{row.vlan:<11}{state:<17}{row.port:<24} {aging}")
    return lines


def _cisco_arp(rows: list[ArpRow]) -> list[str]:
    lines = ["Protocol  Address          Age (min)  Hardware Addr   Type   Interface"]
    for number, row in enumerate(rows):
        age = "-" if row.own or row.static else str(number % 240)
        lines.append(f"Internet  {row.ip:<15}  {age:>8}   {vendor_mac('cisco_ios', row.mac):<14}  ARPA   "
                     f"{row.interface or ''}".rstrip())
    return lines


def _cisco_mac(rows: list[MacRow]) -> list[str]:
    lines = ["          Mac Address Table", "-------------------------------------------", "",
             "Vlan    Mac Address       Type        Ports", "----    -----------       --------    -----"]
    for row in rows:
        vlan = "All" if row.vlan is None else str(row.vlan)
        lines.append(f"{vlan:>4}    {vendor_mac('cisco_ios', row.mac):<14}    {row.kind.upper():<8}    {row.port}")
    lines.append(f"Total Mac Addresses for this criterion: {len(rows)}")
    return lines


# -- one SSH session: a vendor's CLI -------------------------------------------------------------------------------


class _Cli(asyncssh.SSHServerSession):  # type: ignore[misc]
    def __init__(self, device: SimDevice, log: list[str]) -> None:
        self.device = device
        self.vendor = device.vendor
        self.log = log
        self.paging = True
        self.mode = "user" if self.vendor != "cisco_ios" else "enable"
        self.inbox = ""
        self.wake = asyncio.Event()
        self.chan: Any = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    # asyncssh callbacks
    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        return True

    def shell_requested(self) -> bool:
        return True

    def session_started(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: str, datatype: Any) -> None:
        self.inbox += data
        self.wake.set()

    def eof_received(self) -> bool:
        self._stop()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.wake.set()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    def _stop(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.chan.close()
        self.wake.set()

    # terminal I/O
    def _write(self, text: str) -> None:
        if not self.closed:
            self.chan.write(text.replace("\n", "\r\n"))

    async def _key(self) -> str:
        while not self.inbox:
            if self.closed:
                raise EOFError
            self.wake.clear()
            await self.wake.wait()
        key, self.inbox = self.inbox[0], self.inbox[1:]
        return key

    async def _line(self) -> str:
        while True:
            for index, char in enumerate(self.inbox):
                if char in "\r\n":
                    line, rest = self.inbox[:index], self.inbox[index + 1:]
                    if char == "\r" and rest.startswith("\n"):
                        rest = rest[1:]
                    self.inbox = rest
                    return line
            if self.closed:
                raise EOFError
            self.wake.clear()
            await self.wake.wait()

    def prompt(self) -> str:
        name = self.device.name
        if self.vendor == "cisco_ios":
            return f"{name}#" if self.mode == "enable" else f"{name}>"
        return f"[{name}]" if self.mode == "system" else f"<{name}>"

    async def _serve(self) -> None:
        try:
            self._write(self._banner() + self.prompt())
            while not self.closed:
                line = await self._line()
                if self.mode != "password":  # a password is not echoed
                    self._write(line)
                self.log.append(line if self.mode != "password" else "********")
                if self.device.latency:
                    await asyncio.sleep(self.device.latency)
                output = await self._execute(line.strip())
                if self.closed:
                    return
                if output is None:  # logged out
                    self._write("\n")
                    self._stop()
                    return
                if self.mode == "password":
                    self._write("\nPassword: ")
                    continue
                await self._page(output)
                self._write(self.prompt())
        except (EOFError, asyncio.CancelledError, BrokenPipeError, ConnectionError):
            pass

    def _banner(self) -> str:
        if self.vendor == "huawei_vrp":
            return ("\nInfo: The max number of VTY users is 10, and the number\n"
                    "      of current VTY users on line is 1.\n"
                    "      The current login time is 2024-05-20 09:30:00+08:00.\n")
        if self.vendor == "hp_comware":
            return ("\n" + "*" * 78 + "\n* Copyright (c) 2004-2024 New H3C Technologies Co., Ltd. All rights reserved."
                    "*\n* Without the owner's prior written consent,                                 *\n"
                    "* no decompiling or reverse-engineering shall be allowed.                    *\n"
                    + "*" * 78 + "\n\n")
        return "\n"

    async def _page(self, output: str) -> None:
        if not output:
            self._write("\n")
            return
        lines = output.split("\n")
        if not self.paging or len(lines) <= PAGE_LINES:
            self._write("\n" + output + "\n")
            return
        shown = PAGE_LINES
        self._write("\n" + "\n".join(lines[:shown]) + "\n")
        while shown < len(lines):
            self._write(_MORE[self.vendor])
            key = await self._key()
            self._write(_ERASE if self.vendor != "cisco_ios" else "\b" * 9 + " " * 9 + "\b" * 9)
            if key == " ":
                step = PAGE_LINES
            elif key in "\r\n":
                step = 1
                if key == "\r" and self.inbox.startswith("\n"):
                    self.inbox = self.inbox[1:]
            else:
                self._write("\n")
                return
            self._write("\n".join(lines[shown:shown + step]) + "\n")
            shown += step

    # the commands
    async def _execute(self, line: str) -> str | None:
        if not line:
            return ""
        if self.mode == "password":  # Cisco's enable password
            self.mode = "enable" if line == self.device.password else "user"
            return "" if self.mode == "enable" else "% Access denied"
        words = line.split()
        for command, action in self._commands():
            if len(words) == len(command) and all(c.startswith(w.lower()) for w, c in zip(words, command, strict=True)):
                return action()
        return self._unknown(line)

    def _commands(self) -> list[tuple[tuple[str, ...], Any]]:
        if self.vendor == "cisco_ios":
            return [
                (("show", "ip", "arp"), lambda: self._table("arp")),
                (("show", "mac", "address-table"), lambda: self._table("mac")),
                (("terminal", "length", "0"), self._paging_off),
                (("terminal", "width", "511"), lambda: ""),
                (("enable",), self._enable),
                (("disable",), lambda: self._set_mode("user")),
                (("exit",), lambda: None),
                (("logout",), lambda: None),
            ]
        arp = ("display", "arp", "brief") if self.vendor == "huawei_vrp" else ("display", "arp")
        paging = ("screen-length", "0", "temporary") if self.vendor == "huawei_vrp" else ("screen-length", "disable")
        return [
            (arp, lambda: self._table("arp")),
            (("display", "arp"), lambda: self._table("arp")),
            (("display", "mac-address"), lambda: self._table("mac")),
            (paging, self._paging_off),
            (("system-view",), lambda: self._set_mode("system", "Enter system view, return user view with return "
                                                                  "command.")),
            (("return",), lambda: self._set_mode("user")),
            (("quit",), self._quit),
        ]

    def _table(self, table: Literal["arp", "mac"]) -> str:
        text = render(self.vendor, table, self.device.arp if table == "arp" else self.device.mac)
        extra = self.device.after.get(table)
        return f"{text}\n{extra}" if extra else text

    def _paging_off(self) -> str:
        self.paging = False
        if self.vendor == "huawei_vrp":
            return "Info: The configuration takes effect on the current user terminal interface only."
        return ""

    def _set_mode(self, mode: str, message: str = "") -> str:
        self.mode = mode
        return message

    def _enable(self) -> str:
        if self.mode == "enable":
            return ""
        self.mode = "password"  # the next line is the password
        return ""

    def _quit(self) -> str | None:
        if self.mode == "system":
            return self._set_mode("user")
        return None

    def _unknown(self, line: str) -> str:
        marker = " " * (len(self.prompt()) + len(line.split()[0]) // 2) + "^"
        if self.vendor == "huawei_vrp":
            return f"{marker}\nError: Unrecognized command found at '^' position."
        if self.vendor == "hp_comware":
            return f"{marker}\n % Unrecognized command found at '^' position."
        return f"{marker}\n% Invalid input detected at '^' marker.\n"


class _Server(asyncssh.SSHServer):  # type: ignore[misc]
    def __init__(self, simulator: DeviceSimulator, device: SimDevice) -> None:
        self.simulator = simulator
        self.device = device
        self.conn: Any = None

    def connection_made(self, conn: Any) -> None:
        self.conn = conn
        self.simulator._connections.add(conn)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.simulator._connections.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == self.device.username and password == self.device.password

    def session_requested(self) -> _Cli:
        return _Cli(self.device, self.simulator._log[self.device.name])


# -- the simulator -------------------------------------------------------------------------------------------------


class DeviceSimulator:
    """Runs ``devices`` on 127.0.0.1, one port each, until the ``with`` block ends.

    ``ssh_options`` go to ``asyncssh.create_server`` (e.g. ``kex_algs``, ``encryption_algs``).
    """

    host = "127.0.0.1"

    def __init__(self, devices: Sequence[SimDevice], *, ssh_options: Mapping[str, Any] | None = None) -> None:
        names = [device.name for device in devices]
        if len(set(names)) != len(names):
            raise ValueError("device names must be unique")
        self.devices = {device.name: device for device in devices}
        self.ssh_options = dict(ssh_options or {})
        self._ports: dict[str, int] = {}
        self._log: dict[str, list[str]] = {name: [] for name in names}
        self._connections: set[Any] = set()
        self._acceptors: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def address(self, name: str) -> tuple[str, int]:
        return self.host, self._ports[name]

    def received(self, name: str) -> list[str]:
        """Every line the device was sent, over all sessions, in order (the empty Enters included)."""
        return list(self._log[name])

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> DeviceSimulator:
        _raise_fd_limit(len(self.devices) * 2 + 256)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="devicesim", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=120)
        return self

    async def _listen(self) -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        options = {"server_host_keys": [key], "line_editor": False, "keepalive_interval": 0,
                   "login_timeout": 30, **self.ssh_options}
        for device in self.devices.values():
            acceptor = await asyncssh.create_server(
                lambda device=device: _Server(self, device), self.host, 0, **options)
            self._acceptors.append(acceptor)
            self._ports[device.name] = acceptor.get_port()

    async def _close(self) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        for conn in list(self._connections):
            conn.close()
        for acceptor in self._acceptors:
            with contextlib.suppress(Exception):
                await acceptor.wait_closed()
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)
        self._acceptors.clear()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()  # create_server's name lookups ran there

    def stop(self) -> None:
        if self._loop is None:
            return
        loop, thread = self._loop, self._thread
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=30)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> DeviceSimulator:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _raise_fd_limit(wanted: int) -> None:
    # One listening socket per device plus the connections: the default soft limit (often 1024) is too low for
    # a full fleet, the hard limit rarely is.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
