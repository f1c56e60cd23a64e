"""A minimal REAL OpenStack control plane on 127.0.0.1, from nothing, for the provider's contract tests.

    .venv/bin/python tests/integration/openstack/bringup.py up|down|status

``up`` installs what is missing (Debian ``rabbitmq-server`` and ``mariadb-server``,
with a ``policy-rc.d`` that keeps their system services from starting; the OpenStack
virtualenv from PyPI at ``~/.cache/cloudctl/openstack/venv``, rebuilt only when the
pinned versions change), then starts, each in a temporary directory of its own and
on loopback only: a MariaDB server (every service's database), a RabbitMQ node (with
its own epmd), Keystone, Placement, Glance (file store), a Neutron double
(``tests/support/neutron_double.py``), nova-api, nova-conductor, nova-scheduler and
two nova-computes with the fake virt driver (``compute-1``, ``compute-2``); maps the
cells, discovers the hosts, creates flavors and a 1 MiB image, and writes a
``clouds.yaml`` (admin, project-scoped) and ``cloud.json`` (what the tests need to
know: cloud name, image, flavors, the computes' sizes and allocation ratios).
Quotas stay on (Nova's DbQuotaDriver).

``down`` stops every process it started, by PID and process group (SIGTERM, then
SIGKILL), and removes its temporary directory. ``up`` is idempotent: a healthy
control plane already up is reused; a broken one is torn down and started anew
(the fake driver keeps servers in memory: its computes cannot be restarted).

The state of a running control plane is in ``~/.cache/cloudctl/openstack/current.json``.
Only the standard library is imported at the top: the WSGI runner (``_wsgi``) runs
this same file under the OpenStack virtualenv's interpreter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PINS = ("keystone==30.0.0", "openstack-placement==16.0.0", "nova==34.0.0", "glance==33.0.0", "fixtures",
        "pymysql")
DEBIAN_PACKAGES = ("rabbitmq-server", "mariadb-server")
CACHE = Path(os.environ.get("CLOUDCTL_OPENSTACK_CACHE", str(Path.home() / ".cache" / "cloudctl" / "openstack")))
VENV = CACHE / "venv"
STATE_FILE = CACHE / "current.json"
LOCK_FILE = CACHE / "lock"
CLOUD_NAME = "cloudctl-test"
REGION = "RegionOne"
ADMIN_PASSWORD = "cloudctl-admin"
DB_USER, DB_PASSWORD = "openstack", "cloudctl-db"
DATABASES = ("keystone", "placement", "glance", "nova_api", "nova_cell0", "nova")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
NEUTRON_DOUBLE = REPO / "tests" / "support" / "neutron_double.py"

# What each fake compute reports (nova.virt.fake.FakeDriver's sizes) and the ratios set here.
FAKE_COMPUTE = {"vcpus": 1000, "memory_mb": 800000, "local_gb": 600000}
ALLOCATION = {"cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.5, "disk_allocation_ratio": 1.0,
              "reserved_host_memory_mb": 512, "reserved_host_disk_mb": 0, "reserved_host_cpus": 0}
COMPUTE_HOSTS = ("compute-1", "compute-2")
FLAVORS = ({"name": "c1m512", "vcpus": 1, "ram": 512, "disk": 1},
           {"name": "c2m1024", "vcpus": 2, "ram": 1024, "disk": 1},
           {"name": "c4m2048", "vcpus": 4, "ram": 2048, "disk": 2})
IMAGE_NAME = "cloudctl-tiny"

# The order of start: ``down`` stops in reverse.
SERVICES = ("mariadb", "epmd", "rabbitmq", "keystone", "placement", "glance", "neutron", "nova-api",
            "nova-conductor", "nova-scheduler", *(f"nova-compute-{h}" for h in COMPUTE_HOSTS))


def log(message: str) -> None:
    # The process's own stderr, not whatever sys.stderr is now: the bring-up runs in a thread beside the tests, and a
    # CLI test's runner swaps sys.stderr for its captured output, which would then read these lines as its own.
    print(f"[openstack {time.strftime('%H:%M:%S')}] {message}", file=sys.__stderr__, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None,
        input_text: str | None = None) -> str:
    command = [str(a) for a in args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd,
                            input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                           f"{result.stderr[-5000:]}")
    return result.stdout


# ====================================================================== installing


def _apt_install(packages: list[str]) -> None:
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:  # keep the packages' system services from starting on all interfaces
        policy.write_text("#!/bin/sh\n# cloudctl openstack bring-up: no service starts during the install\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lists = Path("/var/lib/apt/lists")
        if not any(lists.glob("*Packages*")):
            run("apt-get", "update", "-q", env=env, timeout=900)
        try:
            run("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages, env=env, timeout=1800)
        except RuntimeError:  # stale lists: update once and try again
            run("apt-get", "update", "-q", env=env, timeout=900)
            run("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages, env=env, timeout=1800)
    finally:
        if ours:
            policy.unlink(missing_ok=True)


def ensure_debian_packages() -> None:
    missing = []
    if not (Path("/usr/sbin/mariadbd").exists() and Path("/usr/bin/mariadb-install-db").exists()):
        missing.append("mariadb-server")
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        missing.append("rabbitmq-server")
    if missing:
        if os.geteuid() != 0:
            raise RuntimeError(f"Debian packages {missing} are missing and this is not root: "
                               f"apt-get install {' '.join(missing)}")
        log(f"installing Debian packages {missing}")
        _apt_install(missing)


def pins_key() -> str:
    return hashlib.sha256("\n".join(PINS).encode()).hexdigest()[:16]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def _base_python() -> str:
    for candidate in (Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}",
                      Path(sys.base_prefix) / "bin" / "python3"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("python3") or sys.executable


def ensure_venv() -> None:
    marker = VENV / ".cloudctl-pins"
    if marker.exists() and marker.read_text().strip() == pins_key() and venv_python().exists():
        return
    log(f"building the OpenStack virtualenv at {VENV} ({', '.join(PINS)})")
    CACHE.mkdir(parents=True, exist_ok=True)
    # Built in place (a virtualenv is not relocatable); the marker is written last, so a build that
    # fails half-way is rebuilt next time.
    shutil.rmtree(VENV, ignore_errors=True)
    run(_base_python(), "-m", "venv", VENV)
    run(VENV / "bin" / "pip", "install", "-q", "--disable-pip-version-check", *PINS, timeout=1800)
    marker.write_text(pins_key() + "\n")


# ====================================================================== processes


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _session_members(session: int, root: Path) -> list[int]:
    """The processes left of a session started here (start_new_session: its id is the leader's PID), known by
    their working directory too: every process is started in the control plane's directory."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session and os.readlink(stat.parent / "cwd").startswith(str(root)):
                members.append(int(stat.parent.name))
    return members


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def alive(pid: int, started: str | None) -> bool:
    now = _start_time(pid)
    if now is None or (started is not None and now != started):
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


class ControlPlane:
    """One control plane: its directory, ports and processes; saved to STATE_FILE after every change."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = state or {"root": "", "ports": {}, "procs": {}, "info": {}}
        self._popen: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.RLock()  # bring-up steps run in two threads

    # -- state ------------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.state["root"])

    @property
    def ports(self) -> dict[str, int]:
        return self.state["ports"]  # type: ignore[no-any-return]

    def save(self) -> None:
        with self._lock:
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = STATE_FILE.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state, indent=2))
            tmp.replace(STATE_FILE)

    @classmethod
    def load(cls) -> ControlPlane | None:
        try:
            return cls(json.loads(STATE_FILE.read_text()))
        except (OSError, ValueError):
            return None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    # -- processes --------------------------------------------------------------------------------

    def spawn(self, name: str, args: list[str | Path], env: dict[str, str] | None = None) -> None:
        logfile = self.root / "logs" / f"{name}.log"
        with open(logfile, "ab") as out:
            proc = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=self.root, start_new_session=True)
        with self._lock:
            self._popen[name] = proc
            self.state["procs"][name] = {"pid": proc.pid, "started": _start_time(proc.pid), "log": str(logfile)}
            self.save()

    def running(self, name: str) -> bool:
        proc = self.state["procs"].get(name)
        return bool(proc) and alive(proc["pid"], proc.get("started"))

    def check_running(self, name: str) -> None:
        if not self.running(name):
            raise RuntimeError(f"{name} exited during the bring-up; its log:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 4000) -> str:
        proc = self.state["procs"].get(name) or {}
        try:
            return Path(proc.get("log", "")).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process groups started here, OpenStack's services first and then the message bus and
        the database they use (so they do not log errors on the way out); SIGKILL what is left; remove the root."""
        # PIDs of another boot mean nothing: only the directory is left to remove.
        procs = self.state.get("procs", {}) if self.state.get("boot_id") == _boot_id() else {}
        infrastructure = ("rabbitmq", "epmd", "mariadb")
        services = [n for n in reversed(SERVICES) if n in procs and n not in infrastructure]
        services += [n for n in procs if n not in SERVICES]
        for phase, grace in ((services, 15.0), ([n for n in infrastructure if n in procs], 15.0)):
            for name in phase:
                proc = procs[name]
                if alive(proc["pid"], proc.get("started")):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc["pid"], signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self._reap()
                if not any(alive(procs[n]["pid"], procs[n].get("started")) for n in phase):
                    break
                time.sleep(0.2)
        for proc in procs.values():
            # what is left of each session started here: rabbitmq's erl_child_setup, mysqld helpers, ...
            for member in _session_members(proc["pid"], self.root):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
        time.sleep(0.2)
        self._reap()
        if self.state.get("root"):
            shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            STATE_FILE.unlink()

    def _reap(self) -> None:
        for proc in self._popen.values():
            proc.poll()

    # -- waiting ----------------------------------------------------------------------------------

    def wait_for(self, what: str, ready: Any, timeout: float = 180, process: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if ready():
                    return
            if process is not None:
                self.check_running(process)
            if time.monotonic() > deadline:
                tail = self.tail(process) if process else ""
                raise RuntimeError(f"{what} not ready after {timeout:.0f} s\n{tail}")
            time.sleep(0.5)

    def wait_http(self, name: str, path: str = "/", timeout: float = 180) -> None:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(self.url(name) + path, timeout=5):
                    return True
            except urllib.error.HTTPError as exc:
                return exc.code < 500
            except OSError:
                return False

        self.wait_for(f"{name} on {self.url(name)}", ready, timeout, process=name)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ====================================================================== configuration


def _ini(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in options.items())
        lines.append("")
    return "\n".join(lines)


class Builder:
    """The steps of ``up``, in order."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.root = plane.root
        self.bin = VENV / "bin"
        self.etc = self.root / "etc"

    def db_url(self, database: str) -> str:
        return (f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.plane.ports['mariadb']}/{database}"
                "?charset=utf8")

    def auth(self, **extra: Any) -> dict[str, Any]:
        return {"auth_type": "password", "auth_url": self.plane.url("keystone") + "/v3", "username": "admin",
                "password": ADMIN_PASSWORD, "project_name": "admin", "user_domain_name": "Default",
                "project_domain_name": "Default", "region_name": REGION, **extra}

    def authtoken(self) -> dict[str, Any]:
        return {"www_authenticate_uri": self.plane.url("keystone") + "/v3", **self.auth(),
                "service_token_roles_required": "false"}

    # -- MariaDB ----------------------------------------------------------------------------------

    def mariadb(self) -> None:
        data, run_dir = self.root / "mariadb" / "data", self.root / "mariadb"
        data.mkdir(parents=True)
        socket_path = run_dir / "mysqld.sock"
        as_user = [f"--user={pwd.getpwuid(os.geteuid()).pw_name}"]
        run("/usr/bin/mariadb-install-db", "--no-defaults", f"--datadir={data}", *as_user,
            "--auth-root-authentication-method=normal", "--skip-test-db", "--basedir=/usr", timeout=300)
        port = self.plane.ports["mariadb"]
        self.plane.spawn("mariadb", [
            "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", *as_user,
            "--bind-address=127.0.0.1", f"--port={port}", f"--socket={socket_path}",
            f"--pid-file={run_dir / 'mysqld.pid'}", "--skip-log-bin", "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=256M",
            "--max-connections=2000", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            "--performance-schema=0", "--log-warnings=1",
        ])
        self.plane.wait_for("MariaDB", lambda: socket_path.exists() and _port_open(port), 120, process="mariadb")
        statements = [f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'",
                      f"GRANT ALL PRIVILEGES ON *.* TO '{DB_USER}'@'127.0.0.1'"]
        statements += [f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8" for name in DATABASES]
        run("/usr/bin/mariadb", "--no-defaults", f"--socket={socket_path}", "-uroot",
            "-e", ";\n".join(statements) + ";")

    # -- RabbitMQ ---------------------------------------------------------------------------------

    def rabbitmq(self) -> None:
        home = self.root / "rabbitmq"
        (home / "mnesia").mkdir(parents=True)
        (home / "log").mkdir()
        (home / "enabled_plugins").write_text("[].\n")
        (home / "rabbitmq-env.conf").write_text("")
        port, dist, epmd = self.plane.ports["rabbitmq"], self.plane.ports["rabbitmq_dist"], self.plane.ports["epmd"]
        (home / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\n"
                                            "log.console = true\nlog.file = false\n")
        (home / ".erlang.cookie").write_text(hashlib.sha256(str(home).encode()).hexdigest()[:20])
        (home / ".erlang.cookie").chmod(0o400)
        env = {"PATH": "/usr/lib/rabbitmq/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(home),
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(epmd)}
        # epmd of its own (not -daemon): its PID is ours to stop, and it listens on loopback only
        epmd_bin = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        self.plane.spawn("epmd", [epmd_bin, "-address", "127.0.0.1", "-port", str(epmd)], env=env)
        self.plane.wait_for("epmd", lambda: _port_open(epmd), 30, process="epmd")
        env.update({
            "RABBITMQ_NODENAME": f"cloudctl{port}@localhost", "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"), "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"), "RABBITMQ_ENABLED_PLUGINS_FILE":
                str(home / "enabled_plugins"), "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        self.plane.spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env)
        self.plane.wait_for("RabbitMQ", lambda: _port_open(port), 180, process="rabbitmq")

    def transport_url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.plane.ports['rabbitmq']}/"

    # -- Keystone ---------------------------------------------------------------------------------

    def wsgi(self, name: str, module: str, env: dict[str, str]) -> None:
        self.plane.spawn(name, [venv_python(), Path(__file__).resolve(), "_wsgi", module,
                                str(self.plane.ports[name])], env={**self.service_env(), **env})

    def service_env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.root), "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "OS_NOVA_DISABLE_EVENTLET_PATCHING": "1"}

    def keystone_configure(self) -> None:
        conf_dir = self.etc / "keystone"
        for sub in ("fernet-keys", "fernet-receipts", "credential-keys"):
            (conf_dir / sub).mkdir(parents=True)
        conf = conf_dir / "keystone.conf"
        conf.write_text(_ini({
            "DEFAULT": {"debug": "false", "use_stderr": "true"},
            "database": {"connection": self.db_url("keystone")},
            "token": {"provider": "fernet", "expiration": 86400},
            "fernet_tokens": {"key_repository": conf_dir / "fernet-keys"},
            "fernet_receipts": {"key_repository": conf_dir / "fernet-receipts"},
            "credential": {"key_repository": conf_dir / "credential-keys"},
            "cache": {"enabled": "false"},
        }))
        manage = [self.bin / "keystone-manage", "--config-file", conf]
        env = self.service_env()
        run(*manage, "db_sync", env=env)
        run(*manage, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root", env=env)
        run(*manage, "credential_setup", "--keystone-user", "root", "--keystone-group", "root", env=env)
        url = self.plane.url("keystone") + "/v3/"
        run(*manage, "bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-admin-url", url,
            "--bootstrap-internal-url", url, "--bootstrap-public-url", url, "--bootstrap-region-id", REGION,
            env=env)
        self.wsgi("keystone", "keystone.wsgi.api", {"OS_KEYSTONE_CONFIG_FILES": str(conf)})

    # -- Placement, Glance ------------------------------------------------------------------------

    def placement_configure(self) -> None:
        conf_dir = self.etc / "placement"
        conf_dir.mkdir(parents=True)
        conf = conf_dir / "placement.conf"
        conf.write_text(_ini({
            "DEFAULT": {"debug": "false"},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": self.authtoken(),
            "placement_database": {"connection": self.db_url("placement"), "sync_on_startup": "true"},
        }))
        run(self.bin / "placement-manage", "--config-file", conf, "db", "sync", env=self.service_env())
        self.wsgi("placement", "placement.wsgi.api", {"OS_PLACEMENT_CONFIG_DIR": str(conf_dir)})

    def glance_configure(self) -> None:
        conf_dir = self.etc / "glance"
        conf_dir.mkdir(parents=True)
        stores = {name: self.root / "glance" / name for name in ("images", "staging", "tasks")}
        for path in stores.values():
            path.mkdir(parents=True)
        paste = conf_dir / "glance-api-paste.ini"
        shutil.copy(VENV / "etc" / "glance" / "glance-api-paste.ini", paste)
        conf = conf_dir / "glance-api.conf"
        conf.write_text(_ini({
            "DEFAULT": {"debug": "false", "enabled_backends": "fs:file", "bind_host": "127.0.0.1",
                        "bind_port": self.plane.ports["glance"], "workers": 1,
                        "image_cache_dir": self.root / "glance" / "cache",
                        "worker_self_reference_url": self.plane.url("glance")},
            "glance_store": {"default_backend": "fs"},
            "fs": {"filesystem_store_datadir": stores["images"]},
            "os_glance_staging_store": {"filesystem_store_datadir": stores["staging"]},
            "os_glance_tasks_store": {"filesystem_store_datadir": stores["tasks"]},
            "database": {"connection": self.db_url("glance")},
            "keystone_authtoken": self.authtoken(),
            "paste_deploy": {"flavor": "keystone", "config_file": paste},
            "oslo_concurrency": {"lock_path": self.root / "glance" / "locks"},
        }))
        run(self.bin / "glance-manage", "--config-file", conf, "db_sync", env=self.service_env())
        self.wsgi("glance", "glance.wsgi.api", {"OS_GLANCE_CONFIG_DIR": str(conf_dir)})

    def neutron(self) -> None:
        self.plane.spawn("neutron", [sys.executable, NEUTRON_DOUBLE, "--port", str(self.plane.ports["neutron"])])

    # -- the catalog ------------------------------------------------------------------------------

    def connection(self) -> Any:
        import openstack  # the caller's interpreter (the project's virtualenv) has openstacksdk

        return openstack.connect(auth_url=self.plane.url("keystone") + "/v3", username="admin",
                                 password=ADMIN_PASSWORD, project_name="admin", user_domain_name="Default",
                                 project_domain_name="Default", region_name=REGION, identity_api_version="3",
                                 compute_api_version="2.79")

    def catalog(self) -> None:
        conn = self.connection()
        services = {"placement": ("placement", "placement", ""), "image": ("glance", "glance", ""),
                    "network": ("neutron", "neutron", ""), "compute": ("nova", "nova-api", "/v2.1")}
        for service_type, (name, port_name, path) in services.items():
            service = conn.identity.create_service(name=name, type=service_type, enabled=True)
            for interface in ("public", "internal"):
                conn.identity.create_endpoint(service_id=service.id, interface=interface, region_id=REGION,
                                              url=self.plane.url(port_name) + path)
        admin_role = conn.identity.find_role("admin")
        self.plane.state["info"]["admin_role_id"] = str(admin_role.id)

    # -- Nova ---------------------------------------------------------------------------------------

    def nova_common(self, host: str, state_path: Path) -> dict[str, dict[str, Any]]:
        return {
            "DEFAULT": {"debug": "false", "host": host, "state_path": state_path, "my_ip": "127.0.0.1",
                        "transport_url": self.transport_url(), "compute_driver": "fake.FakeDriverWithoutFakeNodes",
                        "instances_path": state_path / "instances", "use_rootwrap_daemon": "false",
                        "allow_resize_to_same_host": "true", "shelved_offload_time": -1,
                        "heal_instance_info_cache_interval": -1, "instance_build_timeout": 300,
                        "rpc_response_timeout": 120, "max_concurrent_builds": 20, "max_concurrent_snapshots": 20,
                        **{k: v for k, v in ALLOCATION.items()}},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": self.authtoken(),
            "placement": self.auth(),
            "neutron": self.auth(),
            "glance": {"region_name": REGION},
            "oslo_concurrency": {"lock_path": state_path / "locks"},
            "oslo_messaging_notifications": {"driver": "noop"},
            "scheduler": {"discover_hosts_in_cells_interval": -1, "workers": 1},
            "conductor": {"workers": 1},
            "vnc": {"enabled": "false"},
            "compute": {"resource_provider_association_refresh": 300},
            "wsgi": {"api_paste_config": self.etc / "nova" / "api-paste.ini"},
            "quota": {"driver": "nova.quota.DbQuotaDriver"},
        }

    def nova_configure(self) -> None:
        conf_dir = self.etc / "nova"
        conf_dir.mkdir(parents=True)
        shutil.copy(VENV / "etc" / "nova" / "api-paste.ini", conf_dir / "api-paste.ini")
        state = self.root / "nova" / "controller"
        state.mkdir(parents=True)
        sections = self.nova_common("controller", state)
        sections["api_database"] = {"connection": self.db_url("nova_api")}
        sections["database"] = {"connection": self.db_url("nova")}
        conf = conf_dir / "nova.conf"
        conf.write_text(_ini(sections))
        manage = [self.bin / "nova-manage", "--config-file", conf]
        env = self.service_env()
        run(*manage, "api_db", "sync", env=env)
        run(*manage, "cell_v2", "map_cell0", "--database_connection", self.db_url("nova_cell0"), env=env)
        run(*manage, "cell_v2", "create_cell", "--name", "cell1", "--verbose", env=env)
        run(*manage, "db", "sync", env=env)
        self.wsgi("nova-api", "nova.wsgi.osapi_compute",
                  {"OS_NOVA_CONFIG_DIR": str(conf_dir), "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf"})

    def nova_control(self) -> None:
        """Conductor and scheduler need only the bus and the databases to start: started early, so the
        computes do not sit out nova-conductor's start-up (they wait for it, 10 s at a time)."""
        conf = self.etc / "nova" / "nova.conf"
        env = self.service_env()
        self.plane.spawn("nova-conductor", [self.bin / "nova-conductor", "--config-file", conf], env=env)
        self.plane.spawn("nova-scheduler", [self.bin / "nova-scheduler", "--config-file", conf], env=env)

    def nova_computes(self) -> None:
        env = self.service_env()
        for host in COMPUTE_HOSTS:
            state = self.root / "nova" / host
            (state / "instances").mkdir(parents=True)
            (state / "compute_id").write_text(str(_uuid()) + "\n")
            compute_conf = self.etc / "nova" / f"{host}.conf"
            compute_conf.write_text(_ini(self.nova_common(host, state)))
            self.plane.spawn(f"nova-compute-{host}", [self.bin / "nova-compute", "--config-file", compute_conf],
                             env=env)

    def discover_hosts(self) -> None:
        conn = self.connection()

        def providers() -> bool:
            names = {rp.name for rp in conn.placement.resource_providers()}
            return set(COMPUTE_HOSTS) <= names

        for host in COMPUTE_HOSTS:
            self.plane.check_running(f"nova-compute-{host}")
        self.plane.wait_for("both computes in Placement", providers, 240, process="nova-scheduler")
        manage = [self.bin / "nova-manage", "--config-file", self.etc / "nova" / "nova.conf"]

        def discovered() -> bool:
            run(*manage, "cell_v2", "discover_hosts", "--verbose", env=self.service_env())
            up = [s for s in conn.compute.services(binary="nova-compute") if s.state == "up"]
            hypervisors = list(conn.compute.hypervisors())
            return len(up) == len(COMPUTE_HOSTS) and len(hypervisors) == len(COMPUTE_HOSTS)

        self.plane.wait_for("both computes discovered and up", discovered, 180, process="nova-conductor")

    # -- flavors, image, clouds.yaml --------------------------------------------------------------

    def content(self) -> None:
        conn = self.connection()
        flavors = {}
        for flavor in FLAVORS:
            made = conn.compute.create_flavor(**flavor, is_public=True)
            flavors[flavor["name"]] = {**flavor, "id": str(made.id)}
        image = conn.image.create_image(name=IMAGE_NAME, disk_format="raw", container_format="bare",
                                        visibility="public")
        conn.image.put(f"/images/{image.id}/file", data=b"\0" * (1 << 20),
                       headers={"Content-Type": "application/octet-stream"})

        def active() -> bool:
            return bool(conn.image.get_image(image.id).status == "active")

        self.plane.wait_for("the image", active, 60, process="glance")
        clouds = self.root / "clouds.yaml"
        clouds.write_text(
            "clouds:\n"
            f"  {CLOUD_NAME}:\n"
            "    auth:\n"
            f"      auth_url: {self.plane.url('keystone')}/v3\n"
            "      username: admin\n"
            f"      password: {ADMIN_PASSWORD}\n"
            "      project_name: admin\n"
            "      user_domain_name: Default\n"
            "      project_domain_name: Default\n"
            f"    region_name: {REGION}\n"
            "    identity_api_version: 3\n"
            "    interface: public\n")
        info = self.plane.state["info"]
        info.update({"cloud": CLOUD_NAME, "clouds_yaml": str(clouds), "image_id": str(image.id),
                     "flavors": flavors, "computes": {h: dict(FAKE_COMPUTE) for h in COMPUTE_HOSTS},
                     "allocation": dict(ALLOCATION), "keystone": self.plane.url("keystone") + "/v3",
                     "neutron": self.plane.url("neutron"), "admin_password": ADMIN_PASSWORD})
        (self.root / "cloud.json").write_text(json.dumps(info, indent=2))
        info["cloud_json"] = str(self.root / "cloud.json")
        self.plane.save()


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


# ====================================================================== up / down / status


def healthy(plane: ControlPlane) -> bool:
    if not plane.state.get("info", {}).get("clouds_yaml"):
        return False
    if not all(plane.running(name) for name in SERVICES):
        return False
    try:
        with urllib.request.urlopen(plane.url("keystone") + "/v3", timeout=5):
            return True
    except OSError:
        return False


def _run_steps(steps: list[tuple[str, Any]]) -> None:
    for name, step in steps:
        t0 = time.monotonic()
        step()
        log(f"{name}: {time.monotonic() - t0:.1f} s")


def _parallel(*branches: list[tuple[str, Any]]) -> None:
    """Run each branch of steps in a thread of its own; the first failure is raised once all have ended."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(branches)) as pool:
        futures = [pool.submit(_run_steps, branch) for branch in branches]
    for future in futures:
        future.result()


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One bring-up or tear-down at a time on this machine (two pytest sessions, a shell and a session)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(*, managed: bool = False) -> dict[str, Any]:
    """Bring the control plane up (or find it up); returns its info (clouds.yaml, cloud name, image, ...).

    ``managed``: started for a test session, which tears it down when its last user leaves (see
    :func:`control_plane`); one started by ``bringup.py up`` is left up until ``bringup.py down``.
    """
    with _locked():
        return _up(managed)


def _up(managed: bool) -> dict[str, Any]:
    existing = ControlPlane.load()
    if existing is not None:
        if healthy(existing):
            log(f"already up under {existing.root}")
            return dict(existing.state["info"])
        log("a previous control plane is broken or half up: tearing it down")
        existing.stop()
    started = time.monotonic()
    ensure_debian_packages()
    ensure_venv()
    root = Path(tempfile.mkdtemp(prefix="cloudctl-openstack-", dir="/tmp"))
    (root / "logs").mkdir()
    ports = {name: free_port() for name in ("mariadb", "rabbitmq", "rabbitmq_dist", "epmd", "keystone",
                                             "placement", "glance", "neutron", "nova-api")}
    plane = ControlPlane({"root": str(root), "ports": ports, "procs": {}, "info": {}, "managed": managed,
                          "users": [], "boot_id": _boot_id()})
    plane.save()
    build = Builder(plane)
    keystone_branch: list[tuple[str, Any]] = [
        ("keystone", build.keystone_configure), ("keystone ready", lambda: plane.wait_http("keystone", "/v3")),
        ("catalog", build.catalog)]
    # Nothing in this branch asks Keystone anything before the services are called: it runs beside it.
    databases_branch: list[tuple[str, Any]] = [
        ("placement", build.placement_configure), ("glance", build.glance_configure),
        ("neutron double", build.neutron), ("nova databases, nova-api", build.nova_configure),
        ("nova-conductor, nova-scheduler", build.nova_control)]
    steps: list[tuple[str, Any]] = [
        ("mariadb", build.mariadb), ("rabbitmq", build.rabbitmq),
        ("keystone | placement, glance, nova databases", lambda: _parallel(keystone_branch, databases_branch)),
        ("placement ready", lambda: plane.wait_http("placement")),
        ("glance ready", lambda: plane.wait_http("glance")),
        ("neutron ready", lambda: plane.wait_http("neutron")),
        ("nova-api ready", lambda: plane.wait_http("nova-api", "/v2.1")),
        ("nova-computes", build.nova_computes), ("discover hosts", build.discover_hosts),
        ("flavors, image, clouds.yaml", build.content),
    ]
    try:
        _run_steps(steps)
    except BaseException:
        log(f"bring-up failed; logs under {root / 'logs'} (kept in {CACHE / 'last-failure'})")
        failure = CACHE / "last-failure"
        shutil.rmtree(failure, ignore_errors=True)
        with contextlib.suppress(OSError):
            shutil.copytree(root / "logs", failure)
        plane.stop()
        raise
    plane.state["info"]["bringup_seconds"] = round(time.monotonic() - started, 1)
    plane.save()
    log(f"up in {time.monotonic() - started:.1f} s; clouds.yaml: {plane.state['info']['clouds_yaml']}")
    return dict(plane.state["info"])


def down() -> None:
    with _locked():
        plane = ControlPlane.load()
        if plane is None:
            log("nothing to stop")
            return
        plane.stop()
        log("down")


def status() -> dict[str, Any] | None:
    plane = ControlPlane.load()
    if plane is None:
        return None
    return {"root": plane.state["root"], "healthy": healthy(plane), "ports": plane.ports,
            "processes": {name: {"pid": p["pid"], "running": plane.running(name)}
                          for name, p in plane.state["procs"].items()},
            "info": plane.state.get("info", {})}


@contextlib.contextmanager
def control_plane() -> Iterator[dict[str, Any]]:
    """The control plane for the block: reused if up, else brought up; torn down after the block when
    this process brought it up (or joined one that a test session brought up) and is its last user.
    One brought up by ``bringup.py up`` is reused and left up."""
    me = {"pid": os.getpid(), "started": _start_time(os.getpid())}
    with _locked():
        info = _up(managed=True)
        plane = ControlPlane.load()
        assert plane is not None
        plane.state.setdefault("users", []).append(me)
        plane.save()
    try:
        yield info
    finally:
        with _locked():
            plane = ControlPlane.load()
            if plane is not None:
                users = [u for u in plane.state.get("users", [])
                         if u != me and alive(u["pid"], u.get("started"))]
                plane.state["users"] = users
                plane.save()
                if plane.state.get("managed") and not users:
                    plane.stop()
                    log("down")


# ====================================================================== the WSGI runner


def _serve_wsgi(module: str, port: int) -> None:
    """Serve ``module.application`` on 127.0.0.1:port, threaded; oslo.config sees no foreign arguments."""
    import importlib
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    sys.argv = [module]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        request_queue_size = 128

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{module} {format % args}\n")

    application = importlib.import_module(module).application
    httpd = make_server("127.0.0.1", port, application, server_class=Server, handler_class=Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{module} on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    httpd.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "_wsgi":
        _serve_wsgi(argv[1], int(argv[2]))
        return 0
    command = argv[0] if argv else "status"
    if command == "up":
        print(json.dumps(up(), indent=2))
    elif command == "down":
        down()
    elif command == "status":
        print(json.dumps(status(), indent=2))
    else:
        print("usage: bringup.py up|down|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
