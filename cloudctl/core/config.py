"""Settings, read once from the environment (``CLOUDCTL_*``) and an optional TOML file.

The TOML file is named by ``CLOUDCTL_CONFIG``; environment variables win over it,
so an operator can override one value for one run without editing the file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "default_data_dir", "get_settings", "reset_settings"]


def default_data_dir() -> Path:
    """Where an embedded (SQLite) deployment keeps its files: the XDG data home."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cloudctl"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDCTL_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    # Empty means: a SQLite file inside data_dir (the embedded default).
    database_url: str = ""
    database_echo: bool = False
    # Log lines as text, or as one JSON object per line (time, level, logger, message, request_id, job_id).
    log_format: Literal["text", "json"] = "text"
    display_timezone: str = "Asia/Shanghai"
    # API tokens expire; a department's integration must be re-issued a token this often.
    token_ttl_days: int = Field(default=180, ge=1, le=3650)
    api_page_limit_max: int = Field(default=1000, ge=1)
    # The in-process job runner: how long a claimed job may go without a heartbeat
    # before another runner takes it over (a crashed process leaves its jobs behind).
    job_lease_seconds: int = Field(default=60, ge=5)
    job_poll_seconds: float = Field(default=0.5, gt=0)
    # /readyz: a worker counts as there while its heartbeat is at most this old; false: the API is ready
    # without one (a deployment whose workers come and go on their own schedule).
    ready_worker_seconds: float = Field(default=120, gt=0)
    ready_needs_worker: bool = True
    # PostgreSQL, per process (every API process, every worker has its own pool): pooled connections, how many
    # more under a burst, how long a request waits for one, how long a connection attempt may take; the API's
    # statements are cancelled after api_statement_timeout_seconds (0: never), so one slow read cannot hold a
    # connection for ever. Each process kind names itself to the server (pg_stat_activity.application_name).
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=20, ge=0, le=1000)
    db_pool_timeout_seconds: float = Field(default=10, gt=0, le=600)
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=600)
    api_statement_timeout_seconds: float = Field(default=30, ge=0, le=3600)
    config_file: Path | None = None
    # The simulator cloud keeps its own store, as a real cloud keeps its own database. Empty means:
    # beside a SQLite database, its own SQLite file (two writers on one SQLite file would wait on each
    # other); with PostgreSQL, the same database (its tables are prefixed sim_).
    simulator_database_url: str = ""
    simulator_build_seconds: float = Field(default=2.0, ge=0)
    # Kubernetes clouds name a context of this kubeconfig; empty means the client's own default
    # ($KUBECONFIG, else ~/.kube/config).
    kubeconfig: Path | None = None
    # Requests inside this size tier (in total, per request) are approved at once when the quota has room.
    auto_approve_max_vcpus: int = Field(default=16, ge=0)
    auto_approve_max_ram_gb: int = Field(default=32, ge=0)
    # How long provisioning waits for a server to leave BUILD before calling it failed.
    provision_timeout_seconds: float = Field(default=600, gt=0)
    provision_poll_seconds: float = Field(default=1.0, gt=0)
    # Default prices (费用), CNY per month, where a cloud has no tariff of its own (cloudctl tariff set); GiB.
    price_vcpu_month: float = Field(default=50.0, ge=0)
    price_ram_gb_month: float = Field(default=25.0, ge=0)
    price_disk_gb_month: float = Field(default=0.6, ge=0)
    # Reclaim (资源回收): overrides of the analysis thresholds by name (idle_cpu_p95 = 0.05, …; see
    # cloudctl.reclaim.analysis.Thresholds), and how long a notified department may appeal.
    reclaim_thresholds: dict[str, float] = Field(default_factory=dict)
    reclaim_grace_days: int = Field(default=14, ge=0, le=90)
    # A block volume unattached this long is reclaimable storage (listed in the reclaim report).
    reclaim_volume_unattached_days: int = Field(default=30, ge=1, le=3650)
    # A reclaimed volume is snapshotted before it is deleted; the snapshot is kept this many days.
    reclaim_snapshot_retention_days: int = Field(default=90, ge=1, le=3650)
    # The Prometheus that holds the OpenStack clouds' guest metrics; empty: no telemetry for them.
    prometheus_url: str = ""
    # Per OpenStack cloud: which exporter's recorded series to read ("libvirt", "ceilometer"; default libvirt),
    # or a profile of its own: {"server_label": …, "cpu": SELECTOR, "mem": …, "net_rx": …, "net_tx": …}.
    reclaim_metric_profiles: dict[str, str | dict[str, str]] = Field(default_factory=dict)
    # Extranet: a unit counts as connected when a device of it answered a collection this recently; the
    # network-device inventory (Ansible-style YAML, a file or a directory); concurrent device sessions.
    extranet_fresh_hours: float = Field(default=24, gt=0)
    extranet_inventory: Path | None = None
    extranet_collect_workers: int = Field(default=32, ge=1, le=512)
    # A collection of more devices than this is split into shard jobs of this many, which several workers share
    # (0: never split).
    extranet_shard_devices: int = Field(default=500, ge=0, le=100_000)
    # A scan of more targets than this is split into shard jobs of this many (0: never split); the findings are
    # imported once, over all the shards' results.
    security_scan_shard_targets: int = Field(default=64, ge=0, le=100_000)
    # A reclaim analysis of more live servers than this is split into shard jobs by cloud and unit subtree, of
    # about this many servers each (0: never split); the campaign is the same as an unsplit one.
    reclaim_shard_servers: int = Field(default=20_000, ge=0, le=10_000_000)
    # Days to fix a finding, by severity, over the defaults (critical 7, high 30, medium 90, low 120).
    security_sla_days: dict[str, int] = Field(default_factory=dict)
    # Count those days as working days (weekends, holidays and 调休 from security/data/holidays-cn.yml).
    security_sla_working_days: bool = False
    # The big screen's summary without a token: only on a closed duty-room network.
    screen_public: bool = False
    # Request bodies (alert webhooks included) larger than this are refused with 413; JSON nested deeper
    # than this is refused with 422 before the parser (which recurses) sees it.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    api_max_json_depth: int = Field(default=32, ge=4, le=512)
    # A verified API token is trusted this long without a database lookup (0: look up on every request).
    # Revoking a token, or disabling or moving its user, in this process forgets it at once; in another
    # process (the CLI) it takes effect within this time.
    api_token_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # On SQLite a bounded read (one page, one record) is answered on the API's event loop, without a thread-pool
    # turn; one that takes longer than this (a filter scanning a large table) is interrupted there and finished
    # in the pool, where it holds up no other request. 0: every read takes a thread-pool turn.
    api_read_on_loop_ms: float = Field(default=50, ge=0, le=10_000)
    # Duty periods (7×24值班): the longest period and the most report slots one may have, so a period's
    # schedule stays a size a person can keep (and every view of it a size the server can compute).
    duty_max_days: int = Field(default=366, ge=1, le=3660)
    duty_max_slots: int = Field(default=3000, ge=1, le=100_000)
    # The block list (封禁): the broadest network one entry may block (IPv4 /16, IPv6 /48 by default).
    blocklist_min_prefix_v4: int = Field(default=16, ge=1, le=32)
    blocklist_min_prefix_v6: int = Field(default=48, ge=1, le=128)
    # Incident reporting (《国家网络安全事件报告管理办法》, in force since 2025-11-01): for incidents of 较大 and above,
    # hours from the incident to the report — critical information infrastructure operators, central and state
    # organs (to their own cyberspace office), other operators (to the provincial cyberspace office).
    incident_report_hours_cii: float = Field(default=1, gt=0, le=168)
    incident_report_hours_state_organ: float = Field(default=2, gt=0, le=168)
    incident_report_hours_other: float = Field(default=4, gt=0, le=168)
    # How long a source blocked by an incident's 阻断 step stays blocked unless the step says otherwise.
    incident_block_days: int = Field(default=30, ge=1, le=3650)
    # Notifications (通知): how often the sender and the reminders (催办) sweep, how often and how patiently a
    # message is retried, when non-urgent messages wait (quiet hours and the daily digest, Beijing time), and the
    # console's address that messages link to.
    notify_send_seconds: float = Field(default=10, gt=0)
    notify_remind_minutes: float = Field(default=15, gt=0)
    notify_max_attempts: int = Field(default=8, ge=1, le=100)
    notify_backoff_seconds: float = Field(default=30, ge=0)
    notify_timeout_seconds: float = Field(default=10, gt=0)
    notify_quiet_hours: str = Field(default="22:00-07:00",
                                    pattern=r"^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
    notify_digest_time: str = Field(default="08:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    notify_base_url: str = "http://127.0.0.1:8000"
    # Evidence files (佐证材料): where they are kept (default: attachments/ in the data dir), how large one may be,
    # and which types are taken (recognised by their content, not by the name or the type the client claims).
    attachments_dir: Path | None = None
    attachment_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    attachment_types: list[str] = Field(default_factory=lambda: [
        "image/png", "image/jpeg", "application/pdf", "text/plain", "application/zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"])
    # A resource request needs its department leader's approval (部门负责人审批) before ops' from this size on
    # (in total); a quota increase always does.
    leader_approval_min_vcpus: int = Field(default=17, ge=0)
    leader_approval_min_ram_gb: int = Field(default=33, ge=0)
    # Purchase planning: the forecast says when each cloud's allocations reach this share of its capacity.
    capacity_threshold: float = Field(default=0.8, gt=0, le=2)
    # Budgets (预算): a request that would take its unit's (or business system's) committed cost for the year over
    # the budget goes through the department leader's step and is never approved automatically ("leader"), is
    # refused ("refuse"), or only says so ("warn"); the unit and ops are told when the committed cost reaches each
    # of these percentages of a budget.
    budget_over: Literal["leader", "refuse", "warn"] = "leader"
    budget_warn_percent: list[Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=lambda: [80, 100],
                                                                           max_length=10)

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _refuse_sqlite_default_in_production(self) -> Settings:
        if self.environment == "production" and not self.database_url:
            raise ValueError("database_url: production needs an explicit database (postgresql+psycopg://…)")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cloudctl.db'}"

    @property
    def resolved_simulator_url(self) -> str:
        if self.simulator_database_url:
            return self.simulator_database_url
        main = self.resolved_database_url
        if main.startswith("sqlite"):
            return f"sqlite:///{self.data_dir / 'simulator.db'}"
        return main

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CLOUDCTL_CONFIG") or os.environ.get("CLOUDCTL_CONFIG_FILE")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ValueError(f"CLOUDCTL_CONFIG: no such file: {path}")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


_override: Settings | None = None


@lru_cache(maxsize=1)
def _load() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The settings of this process; tests replace them with :func:`reset_settings`."""
    return _override if _override is not None else _load()


def reset_settings(settings: Settings | None = None, **overrides: Any) -> Settings:
    """Drop cached settings; with arguments, use exactly these from now on."""
    global _override
    _load.cache_clear()
    if settings is None and overrides:
        settings = Settings(**overrides)
    _override = settings
    return get_settings()
