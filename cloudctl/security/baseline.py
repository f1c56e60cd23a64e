"""MLPS level-3 host baseline checks (等保三级 安全基线检查, GB/T 22239-2019 8.1.4 安全计算环境) run by Ansible.

The checks live in ``playbooks/roles/mlps_baseline`` (check-only: they read and report, never change a host). Each
check is one task named ``L3-CES1-NN | AUDIT | <title>`` (an ``assert``), or, when its subject is absent on a host
(no sshd, no sudo, no auditd), its twin ``L3-CES1-NN | N/A | <title>`` (a ``debug``). This module:

- ships the catalogue of checks (``CHECKS``: id → title, ``CHECK_THEMES``: id → theme), parsed from the role's task
  names at import, so the service can list them without running anything;
- defines ``BaselineRunner``, the one-method surface the service uses, and ``AnsibleBaselineRunner``, its adapter
  on ``ansible_runner.run``, which turns task events into ``BaselineResult``s. ansible-runner's types and errors
  never leave this module: Ansible problems become ``InvalidInput`` (inventory, limit, tags) or ``ProviderError``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import yaml

from cloudctl.core.errors import InvalidInput, ProviderError

__all__ = [
    "ADDRESS_TASK",
    "CHECKS",
    "CHECK_THEMES",
    "DEFAULT_PLAYBOOK_DIR",
    "OUTCOMES",
    "PLAYBOOK",
    "THEMES",
    "AnsibleBaselineRunner",
    "BaselineResult",
    "BaselineRun",
    "BaselineRunner",
    "CheckInfo",
    "EventCallback",
    "HostOutcome",
    "HostState",
    "Outcome",
    "load_catalogue",
]

Outcome = Literal["pass", "fail", "error", "notapplicable"]
OUTCOMES: tuple[Outcome, ...] = ("pass", "fail", "error", "notapplicable")
# What became of a host: reached (its checks ran to the end), unreachable (no connection), failed (connected, but
# a reading task broke the play for it, so its checks are incomplete).
HostState = Literal["reached", "unreachable", "failed"]

DEFAULT_PLAYBOOK_DIR = Path(__file__).resolve().parents[2] / "playbooks"
PLAYBOOK = "mlps_baseline.yml"
ROLE = "mlps_baseline"

# The themes of GB/T 22239-2019 8.1.4 the checks are grouped by; each check carries one as an Ansible tag.
THEMES: dict[str, str] = {
    "identity": "身份鉴别 identification and authentication",
    "access": "访问控制 access control",
    "audit": "安全审计 security audit",
    "intrusion": "入侵防范 intrusion prevention",
    "malware": "恶意代码防范 malicious code prevention",
    "integrity": "数据完整性 data integrity",
    "confidentiality": "数据保密性 data confidentiality",
    "backup": "数据备份恢复 data backup and recovery",
    "residual": "剩余信息保护 residual information protection",
}

# The first reading task reports where Ansible connects: ``ansible_host``, else the inventory name.
ADDRESS_TASK = "mlps | gather | address"

_TASK_NAME = re.compile(r"^(?P<id>L3-CES1-\d{2}) \| (?P<kind>AUDIT|N/A) \| (?P<title>.+)$")
_EVIDENCE_MAX = 2000


@dataclass(frozen=True, slots=True)
class CheckInfo:
    check_id: str
    title: str
    theme: str


def load_catalogue(tasks_dir: Path | None = None) -> dict[str, CheckInfo]:
    """The checks of the role, by id, from the ``AUDIT`` task names and tags of ``tasks_dir/*.yml``.

    Raises ``ValueError`` when two ``AUDIT`` tasks share an id or a check has no theme tag: the role is broken.
    """
    tasks_dir = tasks_dir or DEFAULT_PLAYBOOK_DIR / "roles" / ROLE / "tasks"
    catalogue: dict[str, CheckInfo] = {}
    for path in sorted(tasks_dir.glob("*.yml")):
        for task in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            match = _TASK_NAME.match(str(task.get("name", ""))) if isinstance(task, dict) else None
            if match is None or match["kind"] != "AUDIT":
                continue
            check_id = match["id"]
            if check_id in catalogue:
                raise ValueError(f"{path.name}: check {check_id} is defined twice")
            themes = [tag for tag in task.get("tags") or [] if tag in THEMES]
            if not themes:
                raise ValueError(f"{path.name}: check {check_id} has no theme tag (one of {', '.join(THEMES)})")
            catalogue[check_id] = CheckInfo(check_id, match["title"].strip(), themes[0])
    return dict(sorted(catalogue.items()))


def _load_default_catalogue() -> dict[str, CheckInfo]:
    # An installed cloudctl without the playbooks next to it still imports; it just has no catalogue.
    tasks_dir = DEFAULT_PLAYBOOK_DIR / "roles" / ROLE / "tasks"
    return load_catalogue(tasks_dir) if tasks_dir.is_dir() else {}


_CATALOGUE = _load_default_catalogue()
CHECKS: dict[str, str] = {check_id: info.title for check_id, info in _CATALOGUE.items()}
CHECK_THEMES: dict[str, str] = {check_id: info.theme for check_id, info in _CATALOGUE.items()}


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """One check on one host. ``evidence`` is what the host showed (the actual value) or why there is no verdict."""

    check_id: str  # "L3-CES1-NN"
    title: str
    host: str
    outcome: Outcome
    evidence: str
    theme: str


@dataclass(frozen=True, slots=True)
class HostOutcome:
    """One host of the run: whether the checks ran on it, and where Ansible connects to it."""

    host: str  # the inventory name
    address: str  # ansible_host, else the inventory name
    state: HostState
    error: str | None = None  # why it was not reached, or what broke


@dataclass(slots=True)
class BaselineRun:
    status: str  # ansible-runner's final status: "successful" or "failed" (some host unreachable or broken)
    rc: int
    results: list[BaselineResult] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)  # per counter (ok, failures, dark…), per host
    outcomes: dict[str, HostOutcome] = field(default_factory=dict)  # per inventory host

    @property
    def hosts(self) -> list[str]:
        """The hosts whose checks ran to the end."""
        return sorted(h for h, o in self.outcomes.items() if o.state == "reached")


EventCallback = Callable[[BaselineResult], None]


@runtime_checkable
class BaselineRunner(Protocol):
    def run(self, inventory: str | Path, *, limit: str | None = None, tags: Sequence[str] = (),
            extravars: Mapping[str, Any] | None = None, on_event: EventCallback | None = None) -> BaselineRun:
        """Run the checks (all, or those ``tags`` select: check ids or themes) on the hosts of ``inventory``.

        ``on_event`` is called with each result as it arrives; ``extravars`` override the role's thresholds.
        """
        ...


class _Collector:
    """Turns ansible-runner's task events into results, at most one per (host, check), and into what became of
    each host: an unreachable host or one whose play broke is an error of the run, not a check's result."""

    def __init__(self, catalogue: Mapping[str, CheckInfo], on_event: EventCallback | None) -> None:
        self._catalogue = catalogue
        self._on_event = on_event
        self.results: list[BaselineResult] = []
        self._seen: set[tuple[str, str]] = set()
        self._skipped: dict[tuple[str, str], str] = {}
        self._hosts: set[str] = set()
        self._addresses: dict[str, str] = {}
        self._errors: dict[str, tuple[HostState, str]] = {}

    def handle(self, event: dict[str, Any]) -> bool:
        self._handle(event)
        return True  # keep the event in the artifacts (they are deleted with the private_data_dir anyway)

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        data = event.get("event_data") or {}
        task = str(data.get("task") or "")
        host = str(data.get("host") or "")
        raw_res = data.get("res")
        res: Mapping[str, Any] = raw_res if isinstance(raw_res, dict) else {}
        match = _TASK_NAME.match(task)
        if host and kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            self._hosts.add(host)
        if kind == "runner_on_unreachable":
            self._errors.setdefault(host, ("unreachable", f"host unreachable (主机不可达): {_message(res)}"))
            return
        if match is None:
            if task == ADDRESS_TASK and kind == "runner_on_ok":
                self._addresses[host] = str(res.get("msg") or host)
            # A reading task never fails on purpose (failed_when: false): if one does, the play stops for the host.
            elif kind == "runner_on_failed" and not data.get("ignore_errors"):
                self._errors.setdefault(host, ("failed", f"task {task!r} failed: {_message(res)}"))
            return
        check_id, title = match["id"], match["title"].strip()
        if kind == "runner_on_skipped":
            self._skipped.setdefault((host, check_id), title)
            return
        if kind == "runner_on_ok":
            outcome: Outcome = "pass" if match["kind"] == "AUDIT" else "notapplicable"
        elif kind == "runner_on_failed":
            # An assertion that evaluated to false is a failed check; anything else (a template error, a missing
            # variable) means the check could not decide.
            failed_assertion = match["kind"] == "AUDIT" and ("assertion" in res or "evaluated_to" in res)
            outcome = "fail" if failed_assertion else "error"
        else:
            return
        self._add(check_id, title, host, outcome, _message(res))

    def finish(self) -> list[BaselineResult]:
        # A check skipped without its N/A twin reporting (a `when:` on a check with no twin) is not applicable.
        for (host, check_id), title in self._skipped.items():
            if (host, check_id) not in self._seen and host not in self._errors:
                self._add(check_id, title, host, "notapplicable",
                          "skipped: the check's condition is false on this host")
        return self.results

    def outcomes(self) -> dict[str, HostOutcome]:
        outcomes = {}
        for host in sorted(self._hosts):
            address = self._addresses.get(host, host)
            if host in self._errors:
                state, error = self._errors[host]
                outcomes[host] = HostOutcome(host=host, address=address, state=state, error=error)
            else:
                outcomes[host] = HostOutcome(host=host, address=address, state="reached")
        return outcomes

    def _add(self, check_id: str, title: str, host: str, outcome: Outcome, evidence: str) -> None:
        if (host, check_id) in self._seen:
            return
        self._seen.add((host, check_id))
        info = self._catalogue.get(check_id)
        result = BaselineResult(check_id=check_id, title=info.title if info else title, host=host, outcome=outcome,
                                evidence=evidence or "(no message)", theme=info.theme if info else "")
        self.results.append(result)
        if self._on_event is not None:
            self._on_event(result)


def _message(res: Mapping[str, Any]) -> str:
    message = res.get("msg")
    if message is None:
        message = res.get("module_stderr") or res.get("stderr") or ""
    text = " ".join(str(message).split())
    return text if len(text) <= _EVIDENCE_MAX else text[: _EVIDENCE_MAX - 1] + "…"


_ERROR_LINE = re.compile(r"^(?:\[ERROR\]:|ERROR!)\s*(?P<text>.*)$")
_INVENTORY_WARNING = re.compile(r"^\[WARNING\]:\s*(?P<text>(?:Unable to parse|Failed to parse) .*inventory.*)$")


def _ansible_errors(output: str) -> tuple[str, str]:
    """The error Ansible printed before it stopped (each with its continuation lines), and its inventory warnings."""
    errors: list[str] = []
    warnings: list[str] = []
    lines = output.splitlines()
    for index, line in enumerate(lines):
        error = _ERROR_LINE.match(line.strip())
        if error:
            parts = [error["text"]]
            for following in lines[index + 1: index + 4]:
                if not following.strip() or following.startswith(("[", "<<<")):
                    break
                parts.append(following.strip())
            errors.append(" ".join(parts))
            continue
        warning = _INVENTORY_WARNING.match(line.strip())
        if warning and warning["text"] not in warnings:
            warnings.append(warning["text"])
    return " | ".join(errors), "; ".join(warnings[-2:])


class AnsibleBaselineRunner:
    """Runs ``playbooks/mlps_baseline.yml`` with ansible-runner out of a private_data_dir in a temporary directory.

    The private_data_dir holds ``env/`` (extravars, envvars), the inventory when it is given inline, and the run's
    artifacts; ``project`` points at ``playbook_dir`` (not copied). It is deleted after each run. ``work_dir`` is
    where those temporary directories are made (default: the system's temporary directory). ``timeout`` (seconds)
    bounds the whole run.
    """

    def __init__(self, playbook_dir: Path = DEFAULT_PLAYBOOK_DIR, *, work_dir: Path | None = None,
                 timeout: float = 900) -> None:
        playbook_dir = Path(playbook_dir).resolve()
        if not (playbook_dir / PLAYBOOK).is_file():
            raise InvalidInput(f"no {PLAYBOOK} in {playbook_dir}", field="playbook_dir")
        if timeout <= 0:
            raise InvalidInput("must be positive", field="timeout")
        self.playbook_dir = playbook_dir
        self.work_dir = work_dir
        self.timeout = timeout
        tasks_dir = playbook_dir / "roles" / ROLE / "tasks"
        self.catalogue: dict[str, CheckInfo] = _CATALOGUE if playbook_dir == DEFAULT_PLAYBOOK_DIR.resolve() \
            else load_catalogue(tasks_dir)

    def run(self, inventory: str | Path, *, limit: str | None = None, tags: Sequence[str] = (),
            extravars: Mapping[str, Any] | None = None, on_event: EventCallback | None = None) -> BaselineRun:
        # imported here: ansible-runner is slow to import and only this adapter needs it
        import ansible_runner
        from ansible_runner.exceptions import AnsibleRunnerException

        inventory_arg = _inventory_argument(inventory)
        tags_arg = _tags_argument(tags)
        extravars_arg = _extravars_argument(extravars)
        if limit is not None and not limit.strip():
            raise InvalidInput("must not be empty (leave it out to run on every host)", field="limit")
        collector = _Collector(self.catalogue, on_event)
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="cloudctl-baseline-", dir=self.work_dir) as tmp:
            private_data_dir = Path(tmp)
            (private_data_dir / "env").mkdir()
            (private_data_dir / "tmp").mkdir()
            try:
                runner = ansible_runner.run(
                    private_data_dir=str(private_data_dir), project_dir=str(self.playbook_dir), playbook=PLAYBOOK,
                    inventory=inventory_arg, limit=limit, tags=tags_arg, extravars=extravars_arg,
                    envvars=self._envvars(private_data_dir), quiet=True,
                    timeout=max(1, math.ceil(self.timeout)), event_handler=collector.handle,
                )
                status, rc = str(runner.status), int(runner.rc if runner.rc is not None else -1)
                stats = runner.stats
                output = "" if stats is not None else _read_stdout(runner)
            except AnsibleRunnerException as exc:
                raise ProviderError(f"ansible-runner failed: {exc}") from exc
            except OSError as exc:
                raise ProviderError(f"ansible-runner could not start ansible-playbook: {exc}") from exc
        if status in ("timeout", "canceled"):
            raise ProviderError(f"the baseline run stopped ({status}) after {self.timeout:g} s")
        if stats is None:
            raise _error_from_output(output, rc=rc, limit=limit)
        stats = {str(name): {str(host): int(count) for host, count in (counts or {}).items()}
                 for name, counts in stats.items()}
        if not stats.get("processed"):
            raise InvalidInput("no host of the inventory matched (nothing was checked)",
                               field="limit" if limit else "inventory")
        return BaselineRun(status=status, rc=rc, results=collector.finish(), stats=stats,
                           outcomes=collector.outcomes())

    def _envvars(self, private_data_dir: Path) -> dict[str, str]:
        # ansible-runner starts "ansible-playbook" from PATH: put the one installed with this Python first.
        bin_dir = str(Path(_ansible_playbook()).parent)
        path = os.environ.get("PATH", "")
        return {
            "PATH": bin_dir if not path else f"{bin_dir}{os.pathsep}{path}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            # An inventory Ansible cannot parse is an error, not "no hosts" (which would report nothing and pass).
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_ROLES_PATH": str(self.playbook_dir / "roles"),
            "ANSIBLE_LOCAL_TEMP": str(private_data_dir / "tmp"),
        }


def _ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    if beside.is_file():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise ProviderError("ansible-playbook is not installed (pip install ansible-core)")
    return found


def _read_stdout(runner: Any) -> str:
    try:
        with runner.stdout as stream:
            return str(stream.read())
    except (OSError, AttributeError):
        return ""


def _error_from_output(output: str, *, rc: int, limit: str | None) -> InvalidInput | ProviderError:
    error, inventory_warnings = _ansible_errors(output)
    if not error:
        tail = " ".join(output.split()[-40:])
        return ProviderError(f"ansible-playbook stopped before running any check (rc {rc}): {tail or 'no output'}")
    lowered = error.lower()
    if limit and "--limit" in lowered:
        return InvalidInput(f"{error} (limit {limit!r})", field="limit")
    if "inventory" in lowered or "no hosts to target" in lowered:
        detail = f"{error} ({inventory_warnings})" if inventory_warnings else error
        return InvalidInput(detail, field="inventory")
    return ProviderError(f"ansible-playbook failed (rc {rc}): {error}")


def _inventory_argument(inventory: str | Path) -> str:
    """A path (file or directory) is referenced as it is; a string with a newline is inventory content (INI/YAML)."""
    if isinstance(inventory, str) and "\n" in inventory:
        return inventory
    path = Path(inventory).expanduser()
    if not str(inventory).strip():
        raise InvalidInput("must not be empty", field="inventory")
    if not path.exists():
        raise InvalidInput(f"no such inventory file or directory: {path}", field="inventory")
    return str(path.resolve())


def _tags_argument(tags: Sequence[str]) -> str | None:
    if isinstance(tags, str):
        tags = [tags]
    bad = [tag for tag in tags if not tag or "," in tag or tag != tag.strip()]
    if bad:
        raise InvalidInput(f"invalid tags {bad!r}: each is one check id or theme, without commas", field="tags")
    return ",".join(tags) or None


def _extravars_argument(extravars: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not extravars:
        return None
    if not all(isinstance(key, str) and key.isidentifier() for key in extravars):
        raise InvalidInput("variable names must be identifiers", field="extravars")
    try:
        return dict(json.loads(json.dumps(dict(extravars))))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"values must be JSON-serialisable: {exc}", field="extravars") from exc
