"""The suite's sandbox: a home of its own, and a guard that refuses what reaches outside it.

The guard's events are raised here with ``sys.audit`` itself, so checking it never writes a file,
opens a database or sends a packet anywhere a broken guard would let through.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from cloudctl.core.config import Settings
from tests.support import sandbox

OUTSIDE = "/nonexistent-cloudctl-probe/cloudctl.db"


def test_the_default_data_directory_is_the_sandboxs() -> None:
    assert Path(os.environ["HOME"]).is_relative_to(sandbox.SANDBOX)
    assert Settings().data_dir.is_relative_to(sandbox.SANDBOX)
    assert not Settings().resolved_database_url.startswith(f"sqlite:///{sandbox.REAL_HOME}")


@pytest.mark.parametrize(("event", "args"), [
    ("open", (OUTSIDE, "w", os.O_WRONLY | os.O_CREAT)),
    ("open", (OUTSIDE, None, os.O_RDWR)),
    ("os.mkdir", ("/nonexistent-cloudctl-probe", 0o777, -1)),
    ("sqlite3.connect", (OUTSIDE,)),
    ("sqlite3.connect", (f"file:{OUTSIDE}?mode=rwc",)),
])
def test_writes_and_databases_outside_are_refused(event: str, args: tuple[object, ...]) -> None:
    with pytest.raises(PermissionError, match="test sandbox"):
        sys.audit(event, *args)
    assert len(sandbox.take_violations()) == 1  # taken here, so this test does not fail for it


@pytest.mark.parametrize(("event", "args"), [
    ("open", (OUTSIDE, "r", os.O_RDONLY)),  # reading is not writing
    ("sqlite3.connect", (":memory:",)),
    ("open", ("/tmp/cloudctl-probe/x.db", "w", os.O_WRONLY)),
    ("open", ("/work/x/__pycache__/m.cpython-311.pyc", None, os.O_WRONLY | os.O_CREAT)),
])
def test_the_temporary_directory_memory_and_reads_are_allowed(event: str, args: tuple[object, ...]) -> None:
    sys.audit(event, *args)
    assert sandbox.take_violations() == []


def test_only_loopback_connections_are_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sys.audit("socket.connect", sock, ("127.0.0.1", 5432))
        sys.audit("socket.connect", sock, ("localhost", 5432))
        with pytest.raises(PermissionError, match="not loopback"):
            sys.audit("socket.connect", sock, ("192.0.2.1", 80))
        with pytest.raises(PermissionError, match="not loopback"):
            sys.audit("socket.sendto", sock, ("10.64.0.1", 53))
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sys.audit("socket.connect", sock, ("::1", 80, 0, 0))
    assert len(sandbox.take_violations()) == 2
