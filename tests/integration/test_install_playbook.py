"""The installation playbook (playbooks/cloudctl_install.yml) in check mode against this host through
ansible-runner: every task is valid and reached, in order, and nothing is changed (its paths point into a scratch
directory that stays empty).

What check mode exercises here, and what it cannot:

- packages: the apt module on this Debian host, through python3-apt, says what it would install
  (``apt-get install --simulate``) from the package lists already on the host: the cache is not updated in check
  mode, nothing is fetched, nothing is installed (the test checks dpkg before and after);
- the unit files: ``systemd-analyze verify`` reads them as this host's systemd would, from a scratch copy that is
  removed after; the one error allowed is the virtualenv's ``cloudctl`` not being there to execute yet (the pip
  task makes it, and check mode does not run it). A broken unit fails the play;
- starting and enabling: only where systemd is the init and only for units installed already can systemd be asked
  what it would do. In a container without systemd (as here) the start is skipped and the play says so in a
  message; a real run on such a host refuses before it changes anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
DEFAULTS = PLAYBOOKS / "roles" / "cloudctl_install" / "defaults" / "main.yml"


def installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return done.stdout == "install ok installed"


def check_mode(tmp_path: Path, playbooks: Path = PLAYBOOKS) -> tuple[Any, list[dict[str, Any]], Path, Path]:
    """The playbook in check mode against localhost: (runner, events, the target's scratch root, the temp dir)."""
    target = tmp_path / "host"
    private = tmp_path / "runner"
    scratch = tmp_path / "tmp"
    (private / "env").mkdir(parents=True)
    scratch.mkdir()
    events: list[dict[str, Any]] = []
    extravars = {
        "cloudctl_become": False,
        "cloudctl_prefix": str(target / "opt"), "cloudctl_etc_dir": str(target / "etc"),
        "cloudctl_data_dir": str(target / "var"), "cloudctl_systemd_dir": str(target / "systemd"),
        "cloudctl_package": "cloudctl", "cloudctl_db_password": "s3cret/with@odd",
    }
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(playbooks), playbook="cloudctl_install.yml",
        inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                   "ansible_python_interpreter": sys.executable}}}},
        cmdline="--check --diff", extravars=extravars, quiet=True, timeout=300,
        envvars={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "lt"),
                 "ANSIBLE_REMOTE_TEMP": str(tmp_path / "rt"), "ANSIBLE_NOCOLOR": "1", "TMPDIR": str(scratch)},
        event_handler=lambda event: events.append(event) or True,
    )
    return runner, events, target, scratch


def results(events: list[dict[str, Any]], task: str, kind: str = "runner_on_ok") -> list[dict[str, Any]]:
    return [e["event_data"].get("res", {}) for e in events
            if e.get("event") == kind and e["event_data"].get("task") == task]


@pytest.mark.timeout(600)
def test_the_install_playbook_runs_in_check_mode(tmp_path: Path) -> None:
    packages: list[str] = yaml.safe_load(DEFAULTS.read_text())["cloudctl_packages"]
    missing = [p for p in packages if not installed(p)]
    runner, events, target, scratch = check_mode(tmp_path)
    failed = [(e["event_data"].get("task"), e["event_data"].get("res", {}).get("msg"))
              for e in events if e.get("event") == "runner_on_failed"]
    assert runner.status == "successful", failed or runner.stdout.read()
    tasks = [e["event_data"]["task"] for e in events if e.get("event") == "playbook_on_task_start"]
    assert tasks.index("Packages (Debian, Kylin)") < tasks.index("The cloudctl system group") \
        < tasks.index("The cloudctl system user (no login, no home of its own)")
    for wanted in ("cloudctl in a virtualenv of its own", "Migrate the schema to the newest revision",
                   "The first administrator (once)", "systemd units",
                   "Start and enable the API, the workers, the exporter and the nightly backup"):
        assert wanted in tasks
    assert runner.stats["failures"] == {}

    # apt said what it would install, and installed nothing.
    [apt] = results(events, "Packages (Debian, Kylin)")
    assert apt["changed"] is bool(missing)
    for package in missing:
        assert f"Inst {package} " in apt["stdout"], (package, apt["stdout"])
        assert not installed(package)

    # The units were read by systemd-analyze, from a scratch copy that is gone.
    if shutil.which("systemd-analyze"):
        [verify] = results(events, "systemd-analyze verify")
        assert verify["cmd"][:3] == ["systemd-analyze", "verify", "--man=no"]
        assert sorted(Path(arg).name for arg in verify["cmd"][3:]) == sorted(
            yaml.safe_load(DEFAULTS.read_text())["cloudctl_units"])
        assert all(line.endswith("venv/bin/cloudctl is not executable: No such file or directory")
                   for line in verify["stderr_lines"]), verify["stderr_lines"]
    else:
        assert results(events, "Units not verified (no systemd-analyze here)")
    assert list(scratch.iterdir()) == []

    # Starting: asked of systemd only where it is the init and the unit is installed; otherwise said.
    [said] = results(events, "What check mode did not ask systemd")
    if Path("/run/systemd/system").is_dir():
        assert "not installed yet" in said["msg"]
        assert "cloudctl-api.service" in said["msg"]
    else:
        assert "systemd is not the init on this host" in said["msg"]
        assert results(events, "Start and enable the API, the workers, the exporter and the nightly backup",
                       "runner_on_skipped")
    assert not target.exists()  # check mode: nothing was made


@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_check_mode_refuses_a_unit_systemd_cannot_run(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(PLAYBOOKS, copy / "playbooks")
    shutil.copytree(PLAYBOOKS.parent / "deploy" / "systemd", copy / "deploy" / "systemd")
    unit = copy / "deploy" / "systemd" / "cloudctl-worker.service"
    text = unit.read_text()
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    unit.write_text(text.replace(start, "ExecStart=/usr/lib/cloudctl-nowhere/bin/cloudctl job work"))
    runner, events, target, scratch = check_mode(tmp_path / "run", copy / "playbooks")
    assert runner.status == "failed"
    [failure] = results(events, "systemd-analyze verify", "runner_on_failed")
    assert any("cloudctl-worker.service: Command /usr/lib/cloudctl-nowhere/bin/cloudctl is not executable" in line
               for line in failure["stderr_lines"]), failure["stderr_lines"]
    assert list(scratch.iterdir()) == []  # removed all the same
    assert not target.exists()


@pytest.mark.parametrize("unit", ["cloudctl-api.service", "cloudctl-worker.service", "cloudctl-exporter.service",
                                  "cloudctl-backup.service"])
def test_the_units_run_unprivileged_and_hardened(unit: str) -> None:
    text = (PLAYBOOKS.parent / "deploy" / "systemd" / unit).read_text()
    for line in ("User=cloudctl", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "EnvironmentFile=/etc/cloudctl/cloudctl.env"):
        assert line in text.splitlines(), (unit, line)
