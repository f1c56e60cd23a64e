"""Scans and baseline checks cloudctl runs itself, as jobs: nmap over the targets an operator names, and the
MLPS level-3 baseline playbook through ansible-runner, whose failed checks become findings on the host.

Both land through the same reconciliation as an imported report, so a later run that no longer
finds a problem closes its finding (and, with the last of them, the rectification ticket).

Each run says what became of every target or host it was given: reached, unreachable, or failed. A host
that could not be checked is an operational error of the run (the job's error), never a finding: the job
fails when it reached nothing and is partially failed when it reached some, and what it did reach is kept.
Findings are kept under the host's address; a host's findings are closed only by a run that reached it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.core.addresses import canonical_ip
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.security.models import Asset
from cloudctl.security.scanners.base import ScanFinding, Scanner, ScanReport
from cloudctl.security.scanners.nmap import NmapScanner, validate_targets
from cloudctl.security.service.findings import ImportOutcome, store_report

__all__ = [
    "BASELINE_JOB",
    "SCAN_JOB",
    "SCAN_SHARD_JOB",
    "baseline_report",
    "merge_reports",
    "reached_targets",
    "report_from_json",
    "report_to_json",
    "resolve_address",
    "scanner",
    "submit_baseline",
    "submit_scan",
]

SCAN_JOB = "security.scan"
SCAN_SHARD_JOB = "security.scan.shard"
BASELINE_JOB = "security.baseline"
# The scanner the scan job runs; tests put a double of nmap here (nothing but loopback may be scanned from them).
scanner: Callable[[], Scanner] = NmapScanner


def submit_scan(session: Session, principal: Principal, targets: Sequence[str], *, scope: str,
                ports: str | None = None) -> jobs.Job:
    """Queue an nmap scan (-sV) of the operator's targets into a scope."""
    authorize(principal, "security.finding:import")
    validate_targets(list(targets))
    if not scope.strip():
        raise InvalidInput("name the scope the scan covers", field="scope")
    return jobs.submit_job(session, principal, SCAN_JOB, {"targets": list(targets), "scope": scope, "ports": ports})


def reached_targets(targets: Sequence[str], report: ScanReport) -> dict[str, list[str]]:
    """The addresses that answered within each target: an address itself, any address of a network, the addresses
    a host name was resolved to. An empty list: the target reached nothing (down, filtered, or not resolvable)."""
    up = [ipaddress.ip_address(h) for h in report.hosts]
    by_name: dict[str, list[str]] = {}
    for address, name in report.names:
        by_name.setdefault(name.lower().rstrip("."), []).append(address)
    reached: dict[str, list[str]] = {}
    for target in targets:
        try:
            network = ipaddress.ip_network(target, strict=False)
        except ValueError:
            reached[target] = sorted(set(by_name.get(target.lower().rstrip("."), [])))
            continue
        reached[target] = [str(a) for a in up if a.version == network.version and a in network]
    return reached


def _scan(ctx: jobs.JobContext, targets: list[str]) -> ScanReport:
    def progress(percent: float) -> None:
        ctx.progress(int(percent), 100, message=f"nmap {percent:.0f}%")

    return scanner().scan(targets, ports=ctx.params.get("ports"), on_progress=progress)


def _import_scan(session: Session, principal: Principal, targets: list[str], report: ScanReport, *,
                 scope: str, lost: Sequence[str] = ()) -> tuple[jobs.JobOutcome, ImportOutcome]:
    """The findings of a scan of ``targets`` imported into the scope, and the job's outcome: what each target
    reached. ``lost``: targets of shards that did not finish (not scanned, so nothing of theirs is closed)."""
    reached = reached_targets([t for t in targets if t not in set(lost)], report)
    unreachable = [t for t, found in reached.items() if not found]
    outcome = ImportOutcome(created=0, untouched=0, closed=0, reactivated=0)
    if report.hosts:
        outcome = store_report(session, principal, report, scope=scope, source=f"nmap {' '.join(targets)}")
    result = {**dict(outcome), "hosts": len(report.hosts),
              "targets": {"reached": {t: found for t, found in reached.items() if found}, "unreachable": unreachable}}
    errors = []
    if unreachable:
        errors.append(f"{len(unreachable)} of {len(targets)} target(s) reached no host (down, filtered or not "
                      f"resolvable): {', '.join(unreachable)}")
    if lost:
        result["targets"]["not_scanned"] = list(lost)
        errors.append(f"{len(lost)} of {len(targets)} target(s) not scanned (their shard did not finish): "
                      f"{', '.join(lost)}")
    failed = len(unreachable) + len(lost)
    return jobs.JobOutcome.of_parts(result, done=len(targets) - failed, failed=failed,
                                    error="; ".join(errors) or None), outcome


def _combine_scan(session: Session, parent: jobs.Job, shards: list[jobs.Job]) -> jobs.JobOutcome:
    """The shards' reports as one, imported once: the hosts any shard reached are the report's hosts, so only
    their findings can close; targets of a shard that failed or was cancelled count as not scanned."""
    reports = [report_from_json(shard.result["report"]) for shard in shards
               if shard.status is jobs.JobStatus.SUCCEEDED and shard.result and "report" in shard.result]
    lost = [t for shard in shards if shard.status is not jobs.JobStatus.SUCCEEDED
            for t in shard.params.get("targets", [])]
    report = merge_reports(reports)
    outcome, imported = _import_scan(session, jobs.job_principal(parent), list(parent.params["targets"]), report,
                                     scope=parent.params["scope"], lost=lost)
    session.add(jobs.JobLogLine(job_id=parent.id, line=f"{len(report.findings)} findings on {len(report.hosts)} "
                                                      f"host(s) from {len(shards)} shard(s): " + _counts(imported)))
    return jobs.JobOutcome({**outcome.result, "shards": len(shards)}, outcome.status, outcome.error)


def report_to_json(report: ScanReport) -> dict[str, Any]:
    """A report as a job's JSON result (what a shard hands its parent)."""
    return {"scanner": report.scanner,
            "started_at": report.started_at.isoformat() if report.started_at else None,
            "finished_at": report.finished_at.isoformat() if report.finished_at else None,
            "hosts": list(report.hosts), "findings": [asdict(f) for f in report.findings],
            "file_sha256": report.file_sha256, "names": [list(n) for n in report.names]}


def report_from_json(data: Mapping[str, Any]) -> ScanReport:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return ScanReport(scanner=data["scanner"], started_at=when(data["started_at"]),
                      finished_at=when(data["finished_at"]), hosts=tuple(data["hosts"]),
                      findings=tuple(ScanFinding(**{**f, "cve": tuple(f.get("cve") or ())}) for f in data["findings"]),
                      file_sha256=data["file_sha256"], names=tuple((a, n) for a, n in data["names"]))


def merge_reports(reports: Sequence[ScanReport]) -> ScanReport:
    """Several nmap runs as one report: every host once (in the order seen), every finding, the earliest start and
    latest finish; its sha256 is of the parts' (each run's file is its own)."""
    starts = [r.started_at for r in reports if r.started_at is not None]
    ends = [r.finished_at for r in reports if r.finished_at is not None]
    digest = hashlib.sha256(":".join(r.file_sha256 for r in reports).encode()).hexdigest()
    return ScanReport(scanner="nmap", started_at=min(starts) if starts else utcnow(),
                      finished_at=max(ends) if ends else utcnow(),
                      hosts=tuple(dict.fromkeys(h for r in reports for h in r.hosts)),
                      findings=tuple(f for r in reports for f in r.findings), file_sha256=digest,
                      names=tuple(dict.fromkeys(n for r in reports for n in r.names)))


@jobs.job_handler(SCAN_JOB, combine=_combine_scan)
def scan_job(ctx: jobs.JobContext) -> jobs.JobOutcome | jobs.Shards:
    targets: list[str] = ctx.params["targets"]
    size = get_settings().security_scan_shard_targets
    if size and len(targets) > size:
        # Several workers (on several hosts) scan a slice each; the findings are imported once, when the last
        # shard has finished, over what all of them saw (no shard closes a finding on a host it did not scan).
        return jobs.Shards(SCAN_SHARD_JOB, [{"targets": targets[i:i + size], "ports": ctx.params.get("ports")}
                                            for i in range(0, len(targets), size)],
                           message=f"{len(targets)} targets in shards of {size}")
    report = _scan(ctx, targets)
    with ctx.session() as session:
        outcome = _import_scan(session, ctx.principal, targets, report, scope=ctx.params["scope"])
    ctx.log(f"{len(report.findings)} findings on {len(report.hosts)} host(s): " + _counts(outcome[1]))
    return outcome[0]


@jobs.job_handler(SCAN_SHARD_JOB)
def scan_shard_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """A slice of a scan's targets: the report as the parent's combine step imports it. It writes nothing, so
    running it again only scans again."""
    report = _scan(ctx, ctx.params["targets"])
    ctx.log(f"{len(report.findings)} findings on {len(report.hosts)} host(s)")
    return {"report": report_to_json(report), "hosts": len(report.hosts)}


def submit_baseline(session: Session, principal: Principal, inventory: str, *, limit: str | None = None,
                    scope: str = "mlps-baseline") -> jobs.Job:
    """Queue the MLPS baseline playbook against an inventory (check-only: it reads and reports)."""
    authorize(principal, "security.finding:import")
    return jobs.submit_job(session, principal, BASELINE_JOB, {"inventory": inventory, "limit": limit, "scope": scope})


def resolve_address(name: str) -> str | None:
    """The address a host is recorded under: an address as it is, a name as this machine resolves it (as Ansible
    and ssh here do; IPv4 first), None when it does not resolve."""
    if (address := canonical_ip(name)) is not None:  # as every address is kept: 010.0.0.1 is 10.0.0.1, not octal
        return address
    try:
        found = socket.getaddrinfo(name.strip(), None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    addresses = sorted({ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found},
                       key=lambda a: (a.version, a))
    return addresses[0].compressed if addresses else None


def baseline_report(results: Sequence[Any], addresses: Mapping[str, str]) -> ScanReport:
    """Failed and errored checks of the reached hosts as findings (medium: a configuration gap, not a known
    exploit), each under its host's address (``addresses``: inventory name → address) and named by the host."""
    findings = tuple(
        ScanFinding(scanner="baseline", plugin_id=r.check_id, title=r.title,  # type: ignore[arg-type]
                    severity="medium" if r.outcome == "fail" else "low", ip=addresses[r.host], port=None,
                    protocol=None, service=None, description=f"等保三级 安全计算环境 {r.check_id} ({r.theme})",
                    evidence=r.evidence, hostname=r.host)
        for r in results if r.outcome in ("fail", "error") and r.host in addresses)
    digest = hashlib.sha256(json.dumps([[r.check_id, r.host, r.outcome, r.evidence] for r in results],
                                       sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    # Every run is its own import (the time is part of the digest): the same outcomes twice still count as a re-check.
    digest = hashlib.sha256(f"{digest}:{utcnow().isoformat()}".encode()).hexdigest()
    return ScanReport(scanner="baseline", started_at=utcnow(), finished_at=utcnow(),  # type: ignore[arg-type]
                      hosts=tuple(dict.fromkeys(addresses.values())), findings=findings, file_sha256=digest)


def record_baseline(session: Session, results: Sequence[Any], addresses: Mapping[str, str]) -> None:
    """Each reached host's pass count from this run, for the pass ratio per unit (a host not reached keeps the
    counts of the last run that reached it)."""
    counts: dict[str, list[int]] = {}
    for r in results:
        if r.outcome == "notapplicable" or r.host not in addresses:
            continue
        tally = counts.setdefault(addresses[r.host], [0, 0])
        tally[0] += 1
        tally[1] += r.outcome == "pass"
    now = utcnow()
    # The asset is the address's; a host asset a scanner kept under the inventory name alone (no address) is
    # found by that name, lower-case.
    address_of = {host.strip().lower(): address for host, address in addresses.items() if address in counts}
    for asset in session.scalars(select(Asset).where(or_(
            Asset.ip.in_(list(counts)), and_(Asset.kind != "ip", Asset.hostname.in_(list(address_of)))))):
        key = asset.ip if asset.ip in counts else address_of.get(asset.hostname or "")
        if key is not None:
            asset.baseline_checks, asset.baseline_passed = counts[key]
            asset.baseline_checked_at = now


@jobs.job_handler(BASELINE_JOB)
def baseline_job(ctx: jobs.JobContext) -> jobs.JobOutcome:
    from cloudctl.security.baseline import AnsibleBaselineRunner

    done = 0

    def on_event(result: Any) -> None:
        nonlocal done
        done += 1
        ctx.progress(done, None, message=f"{result.check_id} {result.outcome} on {result.host}")

    run = AnsibleBaselineRunner().run(ctx.params["inventory"], limit=ctx.params.get("limit"), on_event=on_event)
    addresses: dict[str, str] = {}
    unreachable: dict[str, str] = {}
    failed: dict[str, str] = {}
    for host, state in run.outcomes.items():
        if state.state == "unreachable":
            unreachable[host] = state.error or "unreachable"
        elif state.state == "failed":
            failed[host] = state.error or "failed"
        elif (address := resolve_address(state.address)) is None:
            failed[host] = f"its address {state.address!r} does not resolve: no finding can be kept for it"
        else:
            addresses[host] = address
    results = [r for r in run.results if r.host in addresses]
    outcome = ImportOutcome(created=0, untouched=0, closed=0, reactivated=0)
    if addresses:
        with ctx.session() as session:
            outcome = store_report(session, ctx.principal, baseline_report(results, addresses),
                                   scope=ctx.params["scope"], source=f"baseline {ctx.params['inventory']}")
            record_baseline(session, results, addresses)
    passed = sum(1 for r in results if r.outcome == "pass")
    ctx.log(f"{passed} of {len(results)} checks passed on {len(addresses)} host(s): " + _counts(outcome))
    problems = {**unreachable, **failed}
    error = (f"{len(problems)} of {len(run.outcomes)} host(s) not checked: "
             + "; ".join(f"{host}: {why}" for host, why in sorted(problems.items()))) if problems else None
    result = {**dict(outcome), "checks": len(results), "passed": passed,
              "hosts": {"reached": addresses, "unreachable": unreachable, "failed": failed}}
    return jobs.JobOutcome.of_parts(result, done=len(addresses), failed=len(problems), error=error)


def _counts(outcome: ImportOutcome) -> str:
    return ", ".join(f"{k} {outcome[k]}" for k in ("created", "untouched", "closed", "reactivated"))
