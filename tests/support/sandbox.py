"""The test run's sandbox: a home of its own, and a guard against touching anything outside it.

Imported first by ``tests/conftest.py``, before anything of cloudctl (or Ansible, or the
OpenStack client) reads ``HOME``: from then on the process's home, XDG directories and
``CLOUDCTL_DATA_DIR`` are a throw-away directory, so no code path of the product can fall back
to the developer's own ``~/.local/share/cloudctl``. ``CLOUDCTL_*`` settings from the developer's
shell are dropped for the same reason (a ``CLOUDCTL_DATABASE_URL`` there would point the suite at
a real database).

The guard is a Python audit hook (PEP 578). While it is armed, opening a file for writing,
creating a directory, opening a SQLite database, or connecting a socket anywhere but to loopback
is refused at the call (``PermissionError``) and remembered; the test during which it happened
fails, naming what was touched. Allowed: the temporary directory (where pytest's ``tmp_path``,
the PostgreSQL and Prometheus servers and the OpenStack tier live), the sandbox, byte-code caches,
``/dev``, and the OpenStack tier's build cache (a virtualenv, not anyone's data). Subprocesses
(nmap, Chromium, Ansible) are outside an audit hook's reach; their files are steered by the
environment set here.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["REAL_HOME", "SANDBOX", "Violation", "arm", "disarm", "take_violations"]

# Kept from the shell: they say which tests to run and where the OpenStack tier's build cache is.
_KEPT = ("CLOUDCTL_TEST_DATABASES", "CLOUDCTL_SKIP_OPENSTACK", "CLOUDCTL_OPENSTACK_CACHE", "CLOUDCTL_TEST_ARTIFACTS")

REAL_HOME = Path(os.environ.get("HOME") or Path.home()).resolve()
SANDBOX = Path(tempfile.mkdtemp(prefix="cloudctl-test-home-")).resolve()
_TMP = Path(tempfile.gettempdir()).resolve()
_OPENSTACK_CACHE = Path(os.environ.get("CLOUDCTL_OPENSTACK_CACHE")
                        or REAL_HOME / ".cache" / "cloudctl" / "openstack").resolve()


def _isolate_environment() -> None:
    for name in [n for n in os.environ if n.startswith("CLOUDCTL_") and n not in _KEPT]:
        del os.environ[name]
    # The OpenStack tier's virtualenv takes minutes to build: it stays where the developer's runs keep it.
    os.environ["CLOUDCTL_OPENSTACK_CACHE"] = str(_OPENSTACK_CACHE)
    home = SANDBOX / "home"
    for name, path in (("HOME", home), ("XDG_DATA_HOME", home / ".local" / "share"),
                       ("XDG_CONFIG_HOME", home / ".config"), ("XDG_CACHE_HOME", home / ".cache"),
                       ("XDG_STATE_HOME", home / ".local" / "state"), ("CLOUDCTL_DATA_DIR", SANDBOX / "data")):
        path.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(path)


_isolate_environment()
atexit.register(shutil.rmtree, SANDBOX, ignore_errors=True)


class Violation(str):
    """What a test touched outside the sandbox, as one line."""


# A screenshot directory the developer named (tests/support/browser.py) is theirs to give.
_ARTIFACTS = (Path(os.environ["CLOUDCTL_TEST_ARTIFACTS"]).resolve(),) if os.environ.get("CLOUDCTL_TEST_ARTIFACTS") \
    else ()
_allowed = (_TMP, SANDBOX, _OPENSTACK_CACHE, Path("/dev"), *_ARTIFACTS)
_armed = False
_violations: list[Violation] = []
_lock = threading.Lock()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def arm(*extra_allowed: Path) -> None:
    global _armed, _allowed
    _allowed = (*_allowed, *(p.resolve() for p in extra_allowed))
    _armed = True


def disarm() -> None:
    global _armed
    _armed = False


def take_violations() -> list[Violation]:
    with _lock:
        found = list(_violations)
        _violations.clear()
    return found


def _inside(path: Any) -> bool:
    if isinstance(path, int):  # a file descriptor: opened (and checked) before
        return True
    try:
        text = os.fsdecode(path)
    except TypeError:
        return True
    if text.startswith("file:"):  # a SQLite URI filename
        text = text.removeprefix("file:").split("?", 1)[0]
    if not text or text == ":memory:" or text.startswith(":memory:"):
        return True
    if "/__pycache__/" in text or text.endswith(".pyc"):
        return True  # the import system's byte-code cache
    resolved = Path(os.path.abspath(text))
    return any(resolved == root or root in resolved.parents for root in _allowed)


def _refuse(what: str) -> None:
    with _lock:
        _violations.append(Violation(what))
    raise PermissionError(f"test sandbox: {what} (tests stay inside their temporary directories and loopback)")


def _loopback(address: Any) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths, netlink and the like: local by nature
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already leave the machine


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _armed:
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and not _inside(path):
            _refuse(f"opened {os.fsdecode(path)!s} for writing")
    elif event == "os.mkdir":
        if not _inside(args[0]):
            _refuse(f"created the directory {os.fsdecode(args[0])}")
    elif event == "sqlite3.connect":
        if not _inside(args[0]):
            _refuse(f"opened the SQLite database {os.fsdecode(args[0])}")
    elif event in ("socket.connect", "socket.sendto"):
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            _refuse(f"connected to {address!r}, which is not loopback")


sys.addaudithook(_hook)
