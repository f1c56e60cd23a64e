"""The MLPS baseline playbook run for real by AnsibleBaselineRunner against this machine (localhost, local connection).

The playbook is check-only: it reads the host and reports. Nothing here changes the machine; sshd is replaced by a
stub script (``mlps_sshd_path``) where a test needs one, and the unreachable host is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl.core.errors import InvalidInput
from cloudctl.security.baseline import (
    CHECK_THEMES,
    CHECKS,
    DEFAULT_PLAYBOOK_DIR,
    PLAYBOOK,
    THEMES,
    AnsibleBaselineRunner,
    BaselineResult,
    BaselineRun,
)

pytestmark = pytest.mark.slow

TASKS_DIR = DEFAULT_PLAYBOOK_DIR / "roles" / "mlps_baseline" / "tasks"
HEALTHY_OUTCOMES = {"pass", "fail", "notapplicable"}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inventory") / "hosts.ini"
    path.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> AnsibleBaselineRunner:
    return AnsibleBaselineRunner(work_dir=tmp_path_factory.mktemp("baseline-work"), timeout=300)


@pytest.fixture(scope="module")
def full_run(runner: AnsibleBaselineRunner, inventory: Path) -> tuple[BaselineRun, list[BaselineResult]]:
    streamed: list[BaselineResult] = []
    return runner.run(inventory, limit="localhost", on_event=streamed.append), streamed


def _outcomes(run: BaselineRun) -> dict[str, str]:
    return {result.check_id: result.outcome for result in run.results}


def _role_tasks() -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    for path in sorted(TASKS_DIR.glob("*.yml")):
        tasks.extend(yaml.safe_load(path.read_text(encoding="utf-8")) or [])
    return tasks


def _stub_sshd(directory: Path, config: str) -> Path:
    """A stand-in for ``sshd -T``: prints an effective configuration."""
    stub = directory / "sshd"
    stub.write_text(f"#!/bin/sh\ncat <<'EOF'\n{config}EOF\n", encoding="utf-8")
    stub.chmod(0o755)
    return stub


# ---------------------------------------------------------------- the role itself


def test_playbook_passes_ansible_syntax_check(inventory: Path) -> None:
    playbook = Path(sys.executable).with_name("ansible-playbook")
    completed = subprocess.run([str(playbook), "--syntax-check", "-i", str(inventory), PLAYBOOK],
                               cwd=DEFAULT_PLAYBOOK_DIR, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_check_tasks_have_unique_ids_carried_in_their_tags() -> None:
    audit: Counter[str] = Counter()
    not_applicable: Counter[str] = Counter()
    titles: dict[str, str] = {}
    for task in _role_tasks():
        name = str(task.get("name", ""))
        if not name.startswith("L3-CES1-"):
            continue
        check_id, kind, title = (part.strip() for part in name.split("|", 2))
        assert len(check_id) == len("L3-CES1-NN"), name
        assert check_id[-2:].isdigit(), name
        assert kind in ("AUDIT", "N/A"), name
        tags = task.get("tags") or []
        assert check_id in tags, f"{name}: tags {tags} lack the id"
        assert [tag for tag in tags if tag in THEMES], f"{name}: no theme tag"
        if kind == "AUDIT":
            audit[check_id] += 1
            titles[check_id] = title
            assert "ansible.builtin.assert" in task, name
            assert task.get("ignore_errors") is True, name
        else:
            not_applicable[check_id] += 1
            assert "ansible.builtin.debug" in task, name
            assert "when" in task, name
    assert [check_id for check_id, count in audit.items() if count > 1] == []
    assert set(not_applicable) <= set(audit)
    assert max(not_applicable.values()) == 1
    assert titles == CHECKS
    assert len(CHECKS) >= 25
    assert set(CHECK_THEMES) == set(CHECKS)


def test_reading_tasks_are_read_only() -> None:
    for task in _role_tasks():
        module = next((key for key in task if key.startswith("ansible.builtin.")), "")
        if module in ("ansible.builtin.command", "ansible.builtin.shell"):
            assert task.get("check_mode") is False, task["name"]
            assert task.get("changed_when") is False, task["name"]
            assert task.get("failed_when") is False, task["name"]
        else:
            assert module in ("ansible.builtin.assert", "ansible.builtin.debug", "ansible.builtin.set_fact",
                              "ansible.builtin.stat", "ansible.builtin.getent", "ansible.builtin.import_tasks"), \
                f"{task.get('name')}: {module} is not a reading module"


# ---------------------------------------------------------------- running it


def test_every_check_reports_once_with_evidence(full_run: tuple[BaselineRun, list[BaselineResult]]) -> None:
    run, streamed = full_run
    assert (run.status, run.rc) == ("successful", 0)
    assert run.stats["processed"] == {"localhost": 1}
    counts = Counter(result.check_id for result in run.results)
    assert counts == Counter(dict.fromkeys(CHECKS, 1))
    for result in run.results:
        assert result.host == "localhost"
        assert result.outcome in HEALTHY_OUTCOMES, result
        assert result.evidence.strip(), result
        assert result.title == CHECKS[result.check_id]
        assert result.theme == CHECK_THEMES[result.check_id]
    assert streamed == run.results
    # What this machine certainly shows: one UID-0 account, and the evidence names actual values.
    by_id = {result.check_id: result for result in run.results}
    assert by_id["L3-CES1-11"].outcome == "pass"
    assert "PASS_MAX_DAYS=" in by_id["L3-CES1-03"].evidence


def test_a_second_run_gives_the_same_outcomes(full_run: tuple[BaselineRun, list[BaselineResult]],
                                              runner: AnsibleBaselineRunner, inventory: Path) -> None:
    assert _outcomes(runner.run(inventory)) == _outcomes(full_run[0])


def test_a_check_id_tag_runs_only_that_check(runner: AnsibleBaselineRunner, inventory: Path) -> None:
    run = runner.run(inventory, tags=["L3-CES1-11"])
    assert [(result.check_id, result.outcome) for result in run.results] == [("L3-CES1-11", "pass")]


def test_a_theme_tag_runs_the_checks_of_that_theme(runner: AnsibleBaselineRunner, inventory: Path) -> None:
    run = runner.run(inventory, tags=["audit"])
    assert sorted(result.check_id for result in run.results) == sorted(
        check_id for check_id, theme in CHECK_THEMES.items() if theme == "audit")
    assert {result.outcome for result in run.results} <= HEALTHY_OUTCOMES


def test_thresholds_are_variables(runner: AnsibleBaselineRunner, inventory: Path) -> None:
    tags = ["L3-CES1-03", "L3-CES1-05"]
    lenient = runner.run(inventory, tags=tags, extravars={"mlps_pass_max_days": 100000, "mlps_pass_warn_age": 0})
    strict = runner.run(inventory, tags=tags, extravars={"mlps_pass_max_days": -1, "mlps_pass_warn_age": 100000})
    assert _outcomes(lenient) == {"L3-CES1-03": "pass", "L3-CES1-05": "pass"}
    assert _outcomes(strict) == {"L3-CES1-03": "fail", "L3-CES1-05": "fail"}
    assert "required ≤ -1" in next(r.evidence for r in strict.results if r.check_id == "L3-CES1-03")


def test_sshd_checks_read_the_effective_configuration(runner: AnsibleBaselineRunner, inventory: Path,
                                                      tmp_path: Path) -> None:
    stub = _stub_sshd(tmp_path, "port 22\npermitrootlogin yes\npermitemptypasswords no\nclientaliveinterval 300\n"
                                "clientalivecountmax 3\nciphers chacha20-poly1305@openssh.com,aes256-cbc\n"
                                "macs hmac-sha2-256,hmac-md5\nkexalgorithms curve25519-sha256\n")
    run = runner.run(inventory, tags=["L3-CES1-08", "L3-CES1-09", "L3-CES1-10", "L3-CES1-25"],
                     extravars={"mlps_sshd_path": str(stub)})
    assert _outcomes(run) == {"L3-CES1-08": "pass", "L3-CES1-09": "pass", "L3-CES1-10": "fail",
                              "L3-CES1-25": "fail"}
    evidence = {result.check_id: result.evidence for result in run.results}
    assert "PermitRootLogin=yes" in evidence["L3-CES1-10"]
    assert "aes256-cbc" in evidence["L3-CES1-25"]
    assert "hmac-md5" in evidence["L3-CES1-25"]


def test_a_missing_sshd_is_not_applicable(runner: AnsibleBaselineRunner, inventory: Path, tmp_path: Path) -> None:
    run = runner.run(inventory, tags=["L3-CES1-10"], extravars={"mlps_sshd_path": str(tmp_path / "no-sshd")})
    assert [(result.check_id, result.outcome) for result in run.results] == [("L3-CES1-10", "notapplicable")]
    assert "no sshd" in run.results[0].evidence


# ---------------------------------------------------------------- errors


def test_a_bad_inventory_is_a_clear_error(runner: AnsibleBaselineRunner, tmp_path: Path) -> None:
    garbage = tmp_path / "broken.ini"
    garbage.write_text("[web\nhost: : = broken\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        runner.run(garbage)
    assert raised.value.field == "inventory"
    assert "inventory" in raised.value.detail.lower()

    with pytest.raises(InvalidInput, match="no such inventory") as missing:
        runner.run(tmp_path / "absent.ini")
    assert missing.value.field == "inventory"


def test_a_limit_matching_no_host_is_a_clear_error(runner: AnsibleBaselineRunner, inventory: Path) -> None:
    with pytest.raises(InvalidInput) as raised:
        runner.run(inventory, limit="no-such-host")
    assert raised.value.field == "limit"


def test_an_unreachable_host_is_an_outcome_of_the_run_not_a_result(runner: AnsibleBaselineRunner,
                                                                   tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: ssh is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inventory = tmp_path / "unreachable.ini"
    inventory.write_text(f"gone ansible_host=127.0.0.1 ansible_port={port} ansible_connection=ssh "
                         "ansible_ssh_common_args='-o ConnectTimeout=5 -o StrictHostKeyChecking=no'\n",
                         encoding="utf-8")
    run = runner.run(inventory)
    assert run.status == "failed"
    assert run.results == []  # no check ran: nothing to report as a check's result
    gone = run.outcomes["gone"]
    assert (gone.state, gone.address) == ("unreachable", "127.0.0.1")
    assert gone.error
    assert "unreachable" in gone.error
    assert run.hosts == []


def test_a_check_that_cannot_evaluate_is_an_error_not_a_failure(runner: AnsibleBaselineRunner,
                                                                 inventory: Path) -> None:
    run = runner.run(inventory, tags=["L3-CES1-24"], extravars={"mlps_high_risk_tcp_ports": 21})  # not a list
    assert [(result.check_id, result.outcome) for result in run.results] == [("L3-CES1-24", "error")]
    assert run.results[0].evidence


def test_audit_rules_are_read_from_the_rules_files(runner: AnsibleBaselineRunner, inventory: Path,
                                                   tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    (rules_dir / "identity.rules").write_text(
        "".join(f"-w /etc/{name} -p wa -k identity\n" for name in ("passwd", "shadow", "group", "gshadow", "sudoers")),
        encoding="utf-8")
    run = runner.run(inventory, tags=["L3-CES1-19"], extravars={
        "mlps_auditd_paths": ["/bin/sh"],  # stands in for an installed auditd; no auditctl, so the files are read
        "mlps_auditctl_paths": [], "mlps_audit_rules_files": [], "mlps_audit_rules_dir": str(rules_dir)})
    assert [(result.check_id, result.outcome) for result in run.results] == [("L3-CES1-19", "fail")]
    assert "missing audit rules: time syscalls, time /etc/localtime" in run.results[0].evidence
