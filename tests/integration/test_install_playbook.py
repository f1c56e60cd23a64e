"""The installation playbook (playbooks/cloudctl_install.yml) in check mode against this host through
ansible-runner: every task is valid and reached, in order, and nothing is changed (its paths point into a scratch
directory that stays empty)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def test_the_install_playbook_runs_in_check_mode(tmp_path: Path) -> None:
    target = tmp_path / "host"
    private = tmp_path / "runner"
    (private / "env").mkdir(parents=True)
    events: list[dict[str, Any]] = []
    extravars = {
        "cloudctl_become": False, "cloudctl_manage_services": False,
        "cloudctl_prefix": str(target / "opt"), "cloudctl_etc_dir": str(target / "etc"),
        "cloudctl_data_dir": str(target / "var"), "cloudctl_systemd_dir": str(target / "systemd"),
        "cloudctl_package": "cloudctl", "cloudctl_db_password": "s3cret/with@odd",
    }
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(PLAYBOOKS), playbook="cloudctl_install.yml",
        inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                   "ansible_python_interpreter": sys.executable}}}},
        cmdline="--check --diff --skip-tags packages", extravars=extravars, quiet=True, timeout=300,
        envvars={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "lt"),
                 "ANSIBLE_REMOTE_TEMP": str(tmp_path / "rt"), "ANSIBLE_NOCOLOR": "1"},
        event_handler=lambda event: events.append(event) or True,
    )
    failed = [(e["event_data"].get("task"), e["event_data"].get("res", {}).get("msg"))
              for e in events if e.get("event") == "runner_on_failed"]
    assert runner.status == "successful", failed or runner.stdout.read()
    tasks = [e["event_data"]["task"] for e in events if e.get("event") == "playbook_on_task_start"]
    assert tasks[:2] == ["The cloudctl system group", "The cloudctl system user (no login, no home of its own)"]
    for wanted in ("cloudctl in a virtualenv of its own", "Migrate the schema to the newest revision",
                   "The first administrator (once)", "systemd units"):
        assert wanted in tasks
    assert runner.stats["failures"] == {}
    assert not target.exists()  # check mode: nothing was made


@pytest.mark.parametrize("unit", ["cloudctl-api.service", "cloudctl-worker.service", "cloudctl-exporter.service",
                                  "cloudctl-backup.service"])
def test_the_units_run_unprivileged_and_hardened(unit: str) -> None:
    text = (PLAYBOOKS.parent / "deploy" / "systemd" / unit).read_text()
    for line in ("User=cloudctl", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "EnvironmentFile=/etc/cloudctl/cloudctl.env"):
        assert line in text.splitlines(), (unit, line)
