"""The shipped rules: valid for Debian's promtool, their unit tests pass, and every alert is complete."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = sorted((ROOT / "monitors" / "rules").glob("*.yml"))
TESTS = sorted((ROOT / "monitors" / "rules" / "tests").glob("*_test.yml"))


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install the Debian package `prometheus` (./scripts/test does this itself)")
    return path


def test_every_rule_file_checks() -> None:
    result = subprocess.run([_promtool(), "check", "rules", *map(str, RULES)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TESTS, ids=[t.name for t in TESTS])
def test_rule_unit_tests_pass(test_file: Path) -> None:
    result = subprocess.run([_promtool(), "test", "rules", str(test_file)], capture_output=True, text=True,
                            check=False, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_severity_annotations_and_a_runbook_that_exists() -> None:
    alerts = [rule for file in RULES for group in yaml.safe_load(file.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule]
    assert {a["alert"] for a in alerts} >= {"Watchdog", "CloudctlQuotaNearlyFull", "CloudctlCloudHeadroomLow",
                                           "CloudctlExtranetAccessBelowTarget", "CloudctlComplianceViolationsNew",
                                           "CloudctlExporterDown"}
    tested = "\n".join(t.read_text() for t in TESTS)
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning", "info", "none"), alert["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert alert["annotations"].get(key), (alert["alert"], key)
        assert (ROOT / alert["annotations"]["runbook_url"]).is_file(), alert["alert"]
        assert f"alertname: {alert['alert']}" in tested, f"{alert['alert']} has no promtool unit test"
