"""The extranet's switches and routers as cloudctl sees them: the inventory, and the ARP and MAC tables read from them.

Devices are listed in an Ansible-style YAML inventory (``inventory/extranet-devices.example.yml``), so the same
file can drive playbooks. Secrets are referenced, never written down: ``password_env`` names an environment
variable, ``password_file`` a file whose first line is the password. The resolved password lives only in the
``Device`` in memory; it is not stored in the database and not shown by ``repr``.

A ``DeviceCollector`` reads one device's tables; ``netmiko_collector.NetmikoCollector`` is the real one.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cloudctl.core.errors import InvalidInput
from cloudctl.core.tabular import load_document

__all__ = [
    "COMMANDS",
    "DEVICE_TYPES",
    "ROLES",
    "ArpEntry",
    "Device",
    "DeviceCollector",
    "DeviceTables",
    "MacEntry",
    "SkippedRow",
    "load_inventory",
    "normalise_mac",
]

# device type (netmiko's name) → (ARP command, MAC command).
# Huawei: `display arp brief`, not `display arp`: ntc-templates' index has no entry for plain `display arp` on
# huawei_vrp, and its catch-all `d[[ir]]` line (a prefix match: "di…") sends it to the `dir` template, which parses
# nothing. `display arp brief` has its own template (checked against ntc-templates 9.3's index).
COMMANDS: dict[str, tuple[str, str]] = {
    "huawei_vrp": ("display arp brief", "display mac-address"),
    "hp_comware": ("display arp", "display mac-address"),
    "cisco_ios": ("show ip arp", "show mac address-table"),
}
DEVICE_TYPES = frozenset(COMMANDS)
ROLES = frozenset({"core", "aggregation", "access"})

# Keys a host (or a group's vars) may carry; anything else is a typo that would otherwise be silently ignored.
_HOST_KEYS = frozenset({"ansible_host", "ansible_port", "ansible_user", "device_type", "unit", "role", "username",
                        "password_env", "password_file", "timeout"})
# Ansible's own connection variables that may sit in a shared inventory without meaning anything to us.
_IGNORED_KEYS = frozenset({"ansible_connection", "ansible_network_os", "ansible_become", "ansible_become_method"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """One managed switch or router. ``password`` is the resolved secret: hidden from ``repr``, never persisted.

    ``timeout`` bounds each read from the device (session set-up and every command), in seconds.
    """

    name: str
    host: str
    port: int = 22
    device_type: str
    unit_code: str
    role: str
    username: str
    password: str = field(repr=False)
    timeout: float = 20.0

    def __repr__(self) -> str:
        return (f"Device(name={self.name!r}, host={self.host!r}, port={self.port}, device_type={self.device_type!r}, "
                f"unit_code={self.unit_code!r}, role={self.role!r}, username={self.username!r}, password='***', "
                f"timeout={self.timeout:g})")


@dataclass(frozen=True, slots=True)
class ArpEntry:
    """One ARP row. ``own`` marks the device's own interface addresses (Huawei type ``I -``, Cisco age ``-``)."""

    ip: str
    mac: str
    interface: str | None
    vlan: int | None
    own: bool = False


@dataclass(frozen=True, slots=True)
class MacEntry:
    """One MAC-table row; ``kind`` is the device's word for how it was learned, lower-cased (dynamic, static, …)."""

    mac: str
    vlan: int | None
    port: str
    kind: str


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A line of a command's output that gave no entry: the template could not read it, or the entry it gave is
    unusable (a MAC entry without a port, an ARP entry without a MAC). Kept for the operator, raw."""

    command: str
    line: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceTables:
    """One device's tables; ``counts`` per command ({"parsed", "skipped"}) and the ``skipped`` rows, when the
    collector parsed text (a simulated device has none)."""

    device: str
    arp: list[ArpEntry]
    mac: list[MacEntry]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)


class DeviceCollector(Protocol):
    def collect(self, device: Device) -> DeviceTables:
        """Both tables of ``device``; ProviderError naming the device and the reason on any failure."""
        ...


_HEX12 = re.compile(r"[0-9a-f]{12}")
_MAC_FORMS = (
    re.compile(r"[0-9a-f]{4}([-.])[0-9a-f]{4}\1[0-9a-f]{4}"),  # aabb-ccdd-eeff (Huawei, H3C), aabb.ccdd.eeff (Cisco)
    re.compile(r"[0-9a-f]{2}([-:])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}"),  # aa:bb:…, AA-BB-… (Windows, IEEE)
    _HEX12,
)


def normalise_mac(text: str) -> str:
    """Any usual notation of a MAC address → ``aa:bb:cc:dd:ee:ff``; InvalidInput(field="mac") otherwise."""
    candidate = text.strip().lower() if isinstance(text, str) else ""
    if not any(form.fullmatch(candidate) for form in _MAC_FORMS):
        raise InvalidInput(f"{text!r} is not a MAC address (aabb-ccdd-eeff, aabb.ccdd.eeff or aa:bb:cc:dd:ee:ff)",
                           field="mac")
    digits = re.sub(r"[-.:]", "", candidate)
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


# -- the inventory ------------------------------------------------------------------------------------------------


def load_inventory(path: Path, *, environ: Mapping[str, str] = os.environ) -> list[Device]:
    """Devices of an Ansible-style YAML inventory file, or of every ``*.yml``/``*.yaml`` file in a directory.

    Group ``vars`` are inherited by the group's hosts and by its child groups, a host's own keys win, as in Ansible.
    A host listed in several groups (or files) is refused: its settings would depend on the order of reading.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
        if not files:
            raise InvalidInput(f"{path} holds no .yml or .yaml inventory file", field="inventory")
    elif path.is_file():
        files = [path]
    else:
        raise InvalidInput(f"{path} does not exist", field="inventory")
    hosts: dict[str, tuple[dict[str, Any], Path]] = {}
    for file in files:
        for name, settings in _hosts_of(file).items():
            if name in hosts:
                raise InvalidInput(f"{name} is listed twice ({hosts[name][1]} and {file})", field=f"hosts.{name}")
            hosts[name] = (settings, file)
    return [_device(name, settings, file, environ) for name, (settings, file) in hosts.items()]


def _hosts_of(file: Path) -> dict[str, dict[str, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}", field="inventory") from None
    try:
        # Bounded as every file from outside is (nesting, numbers); groups of groups nest deeper than a table.
        document = load_document(text, "yaml", max_depth=64)
    except InvalidInput as exc:
        raise InvalidInput(f"{file} is not a usable inventory: {exc.detail}", field="inventory") from None
    if document is None:
        return {}
    if not isinstance(document, dict) or not isinstance(document.get("all"), dict):
        raise InvalidInput(f"{file}: an inventory starts with `all:` (all: children: <group>: hosts: …)",
                           field="all")
    hosts: dict[str, dict[str, Any]] = {}
    _walk_group("all", document["all"], {}, hosts)
    return hosts


def _walk_group(name: str, group: Any, inherited: dict[str, Any], hosts: dict[str, dict[str, Any]]) -> None:
    if group is None:
        return
    if not isinstance(group, dict):
        raise InvalidInput("a group is a mapping of hosts, vars and children", field=f"groups.{name}")
    unknown = set(group) - {"hosts", "vars", "children"}
    if unknown:
        raise InvalidInput(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; a group has hosts, vars and "
                           f"children", field=f"groups.{name}")
    group_vars = group.get("vars") or {}
    if not isinstance(group_vars, dict):
        raise InvalidInput("vars must be a mapping", field=f"groups.{name}.vars")
    merged = {**inherited, **group_vars}
    members = group.get("hosts") or {}
    if not isinstance(members, dict):
        raise InvalidInput("hosts must be a mapping of host name to settings", field=f"groups.{name}.hosts")
    for host, settings in members.items():
        if settings is not None and not isinstance(settings, dict):
            raise InvalidInput("a host's settings are a mapping", field=f"hosts.{host}")
        if str(host) in hosts:
            raise InvalidInput(f"{host} is listed in more than one group", field=f"hosts.{host}")
        hosts[str(host)] = {**merged, **(settings or {})}
    children = group.get("children") or {}
    if not isinstance(children, dict):
        raise InvalidInput("children must be a mapping of group names", field=f"groups.{name}.children")
    for child, child_group in children.items():
        _walk_group(str(child), child_group, merged, hosts)


def _device(name: str, settings: dict[str, Any], file: Path, environ: Mapping[str, str]) -> Device:
    def bad(key: str, reason: str) -> InvalidInput:
        return InvalidInput(reason, field=f"hosts.{name}.{key}")

    if "password" in settings or "ansible_password" in settings:
        key = "password" if "password" in settings else "ansible_password"
        raise bad(key, "passwords are not written into the inventory: name an environment variable with "
                       "password_env or a file with password_file")
    unknown = set(settings) - _HOST_KEYS - _IGNORED_KEYS
    if unknown:
        raise bad(sorted(map(str, unknown))[0], f"unknown key; a host has {', '.join(sorted(_HOST_KEYS))}")

    host = settings.get("ansible_host")
    if host is None:
        raise bad("ansible_host", "missing: the management IP address")
    try:
        address = ipaddress.ip_address(str(host))
    except ValueError:
        raise bad("ansible_host", f"{host!r} is not an IP address") from None

    port = settings.get("ansible_port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise bad("ansible_port", f"{port!r} is not a TCP port (1-65535)")

    device_type = settings.get("device_type")
    if device_type not in DEVICE_TYPES:
        raise bad("device_type", f"{device_type!r} is not one of {', '.join(sorted(DEVICE_TYPES))}"
                  if device_type is not None else f"missing: one of {', '.join(sorted(DEVICE_TYPES))}")

    unit = settings.get("unit")
    if unit is None or not str(unit).strip():
        raise bad("unit", "missing: the code of the unit (单位) the device belongs to")

    role = settings.get("role")
    if role not in ROLES:
        raise bad("role", f"{role!r} is not one of {', '.join(sorted(ROLES))}" if role is not None
                  else f"missing: one of {', '.join(sorted(ROLES))}")

    username = settings.get("username", settings.get("ansible_user"))
    if not isinstance(username, str) or not username:
        raise bad("username", "missing: the login name")

    timeout = settings.get("timeout", 20)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise bad("timeout", f"{timeout!r} is not a positive number of seconds")

    return Device(name=name, host=str(address), port=port, device_type=str(device_type), unit_code=str(unit).strip(),
                  role=str(role), username=username, password=_secret(settings, file, environ, bad),
                  timeout=float(timeout))


def _secret(settings: dict[str, Any], file: Path, environ: Mapping[str, str],
            bad: Callable[[str, str], InvalidInput]) -> str:
    has_env, has_file = "password_env" in settings, "password_file" in settings
    if has_env and has_file:
        raise bad("password_env", "give password_env or password_file, not both")
    if has_env:
        variable = settings["password_env"]
        if not isinstance(variable, str) or not variable:
            raise bad("password_env", "must name an environment variable")
        value = environ.get(variable)
        if not value:
            raise bad("password_env", f"the environment variable {variable} is not set or empty")
        return value
    if has_file:
        reference = settings["password_file"]
        if not isinstance(reference, str) or not reference:
            raise bad("password_file", "must be the path of a file")
        secret_path = Path(reference).expanduser()
        if not secret_path.is_absolute():
            secret_path = file.parent / secret_path  # relative to the inventory file, not to wherever we run
        try:
            lines = secret_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise bad("password_file", f"cannot read {secret_path}: {exc.__class__.__name__}") from None
        if not lines or not lines[0].strip():
            raise bad("password_file", f"{secret_path} is empty: its first line is the password")
        return lines[0].strip()
    raise bad("password_env", "missing secret: give password_env (an environment variable) or password_file")
