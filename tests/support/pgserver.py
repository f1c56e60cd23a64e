"""A throw-away PostgreSQL server for the test suite: initdb + pg_ctl in a temporary directory, on loopback.

PostgreSQL refuses to run as root. When the suite runs as root (CI does), the
server runs as the ``postgres`` system user that Debian's package creates (or, if
there is none, a system user ``cloudctl-test`` made here), through ``runuser``.
Each server has its own directory under /tmp and its own port, so servers left
behind by an earlier run, or started by another process, are never touched.

    with PostgresServer() as pg:
        url = pg.create_database("cloudctl_test")   # postgresql+psycopg://cloudctl@127.0.0.1:PORT/cloudctl_test
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

__all__ = ["PostgresServer"]

SUPERUSER = "cloudctl"
FALLBACK_USER = "cloudctl-test"
OPTIONS = "-F -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
_START_ATTEMPTS = 3  # a free port can be taken by someone else between choosing it and binding it


def _version_key(initdb: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(initdb).parent.parent.name))


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
        if (bindir / "initdb").exists():
            return bindir
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
                       "`postgresql` (./scripts/test does this itself)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """None when we may run the server ourselves; else the unprivileged user to run it as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER],
                   check=True, capture_output=True)
    return FALLBACK_USER


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class PostgresServer:
    """A PostgreSQL server of its own, superuser ``cloudctl`` with trust auth, on 127.0.0.1 only."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = 0
        self.run_as = _server_user()
        self.root: Path | None = None

    # -- paths, all inside one private directory -------------------------------------------------------

    @property
    def data(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "sockets"

    @property
    def log(self) -> Path:
        return self.data / "server.log"

    # -- URLs ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database ``postgres``."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    # -- running commands, as the server user when we are root --------------------------------------

    def _env(self) -> dict[str, str]:
        # PGDATA, PGPORT, PGHOST and friends from the caller's shell must not steer pg_ctl.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_")) and k != "LANG"}
        env["LC_ALL"] = "C"
        return env

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root,
                              env=self._env(), timeout=timeout, stdin=subprocess.DEVNULL)

    def _make_root(self) -> Path:
        # Under /tmp (short socket paths; traversable by everyone), mode 0700, owned by the server user.
        root = Path(tempfile.mkdtemp(prefix="cloudctl-pg-", dir="/tmp"))
        (root / "sockets").mkdir(mode=0o700)
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            for path in (root, root / "sockets"):
                os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        return root

    def _initdb(self) -> None:
        base = [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
                "--no-sync"]
        result = self._run(*base, "--locale=C.UTF-8")
        if result.returncode != 0:  # no C.UTF-8 locale on this machine: byte order is just as good for tests
            shutil.rmtree(self.data, ignore_errors=True)
            result = self._run(*base, "--no-locale")
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        options = f"-h {self.host} -p {self.port} -k {self.sockets} {OPTIONS}"
        return self._run(str(self.bindir / "pg_ctl"), "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                         "-o", options, "start")

    def start(self) -> PostgresServer:
        self.root = self._make_root()
        self._initdb()
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = _free_port()
            result = self._pg_ctl_start()
            if result.returncode == 0:
                return self
            log = _tail(self.log)
            if "could not bind" not in log or attempt == _START_ATTEMPTS:
                raise RuntimeError(f"PostgreSQL did not start on {self.host}:{self.port} "
                                   f"(pg_ctl exited {result.returncode}): {result.stderr.strip()}\n"
                                   f"--- tail of {self.log} ---\n{log}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.root is None:
            return
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
                          timeout=60)
            except subprocess.TimeoutExpired:  # never seen; but never leave a server behind either
                with contextlib.suppress(OSError, ValueError, IndexError):
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def create_database(self, name: str, *, template: str = "template0") -> str:
        """A new UTF-8 database, empty or a copy of ``template``; returns its SQLAlchemy URL.

        A template must have no open connections (PostgreSQL copies it at file level).
        """
        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        return self.url_for(name)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
