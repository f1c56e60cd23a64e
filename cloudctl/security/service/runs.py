"""Scans and baseline checks cloudctl runs itself, as jobs: nmap over the targets an operator names, and the
MLPS level-3 baseline playbook through ansible-runner, whose failed checks become findings on the host.

Both land through the same reconciliation as an imported report, so a later run that no longer
finds a problem closes its finding (and, with the last of them, the rectification ticket).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.errors import InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.security.models import Asset
from cloudctl.security.scanners.base import ScanFinding, ScanReport, canonical_ip
from cloudctl.security.scanners.nmap import NmapScanner, validate_targets
from cloudctl.security.service.findings import ImportOutcome, store_report

__all__ = ["BASELINE_JOB", "SCAN_JOB", "baseline_report", "submit_baseline", "submit_scan"]

SCAN_JOB = "security.scan"
BASELINE_JOB = "security.baseline"


def submit_scan(session: Session, principal: Principal, targets: Sequence[str], *, scope: str,
                ports: str | None = None) -> jobs.Job:
    """Queue an nmap scan (-sV) of the operator's targets into a scope."""
    authorize(principal, "security.finding:import")
    validate_targets(list(targets))
    if not scope.strip():
        raise InvalidInput("name the scope the scan covers", field="scope")
    return jobs.submit_job(session, principal, SCAN_JOB, {"targets": list(targets), "scope": scope, "ports": ports})


@jobs.job_handler(SCAN_JOB)
def scan_job(ctx: jobs.JobContext) -> dict[str, Any]:
    def progress(percent: float) -> None:
        ctx.progress(int(percent), 100, message=f"nmap {percent:.0f}%")

    report = NmapScanner().scan(ctx.params["targets"], ports=ctx.params.get("ports"), on_progress=progress)
    with ctx.session() as session:
        outcome = store_report(session, ctx.principal, report, scope=ctx.params["scope"],
                               source=f"nmap {' '.join(ctx.params['targets'])}")
    ctx.log(f"{len(report.findings)} findings on {len(report.hosts)} host(s): " + _counts(outcome))
    return dict(outcome)


def submit_baseline(session: Session, principal: Principal, inventory: str, *, limit: str | None = None,
                    scope: str = "mlps-baseline") -> jobs.Job:
    """Queue the MLPS baseline playbook against an inventory (check-only: it reads and reports)."""
    authorize(principal, "security.finding:import")
    return jobs.submit_job(session, principal, BASELINE_JOB, {"inventory": inventory, "limit": limit, "scope": scope})


def baseline_report(results: Sequence[Any], hosts: Sequence[str]) -> ScanReport:
    """Failed and errored checks as findings (medium: a configuration gap, not a known exploit)."""
    findings = tuple(
        ScanFinding(scanner="baseline", plugin_id=r.check_id or "host", title=r.title or "baseline run failed",  # type: ignore[arg-type]
                    severity="medium" if r.outcome == "fail" else "low", ip=r.host, port=None, protocol=None,
                    service=None, description=f"等保三级 安全计算环境 {r.check_id} ({r.theme})", evidence=r.evidence)
        for r in results if r.outcome in ("fail", "error"))
    digest = hashlib.sha256(json.dumps([[r.check_id, r.host, r.outcome, r.evidence] for r in results],
                                       sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    # Every run is its own import (the time is part of the digest): the same outcomes twice still count as a re-check.
    digest = hashlib.sha256(f"{digest}:{utcnow().isoformat()}".encode()).hexdigest()
    return ScanReport(scanner="baseline", started_at=utcnow(), finished_at=utcnow(), hosts=tuple(hosts),  # type: ignore[arg-type]
                      findings=findings, file_sha256=digest)


def record_baseline(session: Session, results: Sequence[Any]) -> None:
    """Each host's pass count from this run, for the pass ratio per unit (a host that errored as a whole counts
    one check, failed: its baseline is unknown, not passed)."""
    counts: dict[str, list[int]] = {}
    for r in results:
        if r.outcome == "notapplicable":
            continue
        # The asset's key: the address, or (an inventory name such as "localhost") the host name, lower-case.
        tally = counts.setdefault(canonical_ip(r.host) or r.host.strip().lower(), [0, 0])
        tally[0] += 1
        tally[1] += r.outcome == "pass"
    now = utcnow()
    keys = list(counts)
    for asset in session.scalars(select(Asset).where(or_(Asset.ip.in_(keys),
                                                         and_(Asset.kind != "ip", Asset.hostname.in_(keys))))):
        asset.baseline_checks, asset.baseline_passed = counts[asset.ip or asset.hostname or ""]
        asset.baseline_checked_at = now


@jobs.job_handler(BASELINE_JOB)
def baseline_job(ctx: jobs.JobContext) -> dict[str, Any]:
    from cloudctl.security.baseline import AnsibleBaselineRunner

    done = 0

    def on_event(result: Any) -> None:
        nonlocal done
        done += 1
        ctx.progress(done, None, message=f"{result.check_id} {result.outcome} on {result.host}")

    run = AnsibleBaselineRunner().run(ctx.params["inventory"], limit=ctx.params.get("limit"), on_event=on_event)
    with ctx.session() as session:
        outcome = store_report(session, ctx.principal, baseline_report(run.results, run.hosts),
                               scope=ctx.params["scope"], source=f"baseline {ctx.params['inventory']}")
        record_baseline(session, run.results)
    passed = sum(1 for r in run.results if r.outcome == "pass")
    ctx.log(f"{passed} of {len(run.results)} checks passed on {len(run.hosts)} host(s): " + _counts(outcome))
    return {**dict(outcome), "checks": len(run.results), "passed": passed}


def _counts(outcome: ImportOutcome) -> str:
    return ", ".join(f"{k} {outcome[k]}" for k in ("created", "untouched", "closed", "reactivated"))
