"""The Kubernetes provider: a "container cloud" (容器云) whose tenants get namespace quota, not VMs.

A unit is a namespace ``unit-<code>`` (an RFC 1123 label), labelled with the unit's code
and annotated with its Chinese name, with a LimitRange that gives containers default
requests and limits (a quota on requests refuses pods that state none). Its quota is one
ResourceQuota, ``cloudctl-quota``: vcpus and ram_mb are the namespace's requests.cpu and
requests.memory, instances its pods, disk_gb its requests.storage. Quota quantities are
read with the client's own parser and rounded up to whole cores, MiB and GiB.

Capacity is the nodes' allocatable CPU and memory against the requests that cloudctl's
quotas report as used. Server operations are refused: there are no VMs here.
The client's exceptions never leave this module: each call's errors become cloudctl's.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NoReturn, ParamSpec, TypeVar

import pydantic
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.utils import parse_quantity

from cloudctl.compute.providers.base import (
    Flavor,
    QuotaLimits,
    QuotaUsage,
    ResourceCapacity,
    ServerAction,
    ServerInfo,
    ServerSpec,
    SnapshotInfo,
    VolumeInfo,
)
from cloudctl.core.errors import CloudctlError, Conflict, InvalidInput, NotFound, ProviderError

__all__ = ["KubernetesProvider", "namespace_name"]

P = ParamSpec("P")
R = TypeVar("R")

UNIT_LABEL = "cloudctl.io/unit"
UNIT_NAME_ANNOTATION = "cloudctl.io/unit-name"
# The well-known label: capacity() finds cloudctl's quotas by it, and `kubectl get quota -A -l` too.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "cloudctl"
QUOTA_NAME = "cloudctl-quota"
LIMIT_RANGE_NAME = "cloudctl-defaults"
# Defaults for containers that state no resources; without them a quota on requests refuses those pods.
DEFAULT_REQUEST = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_LIMIT = {"cpu": "500m", "memory": "512Mi"}

MIB = 1024**2
GIB = 1024**3
# The quota keys cloudctl writes, and the QuotaLimits field each one comes from (named in a Conflict).
QUOTA_FIELDS = {"requests.cpu": "vcpus", "limits.cpu": "vcpus", "requests.memory": "ram_mb",
                "limits.memory": "ram_mb", "pods": "instances", "requests.storage": "disk_gb"}
# Kubernetes counts "cpu" and "memory" in a quota as requests.cpu and requests.memory.
ALIASES = {"requests.cpu": "cpu", "requests.memory": "memory"}
NOT_VMS = "a Kubernetes cloud carries namespace quota, not VMs"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def namespace_name(unit_code: str) -> str:
    """The unit's namespace: ``"990100-D01"`` → ``"unit-990100-d01"``."""
    slug = re.sub(r"[^a-z0-9-]+", "-", unit_code.strip().lower()).strip("-")
    name = f"unit-{slug}"
    if not slug or len(name) > 63 or not _NAMESPACE.match(name):
        raise InvalidInput(f"unit code {unit_code!r} gives no valid Kubernetes namespace name", field="unit_code")
    return name


def _translated(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the client's exceptions into cloudctl's, with the API server's own message."""

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CloudctlError:
            raise
        except ApiException as exc:
            _raise_for(exc)
        except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out: no HTTP answer at all
            raise ProviderError(f"cannot reach the Kubernetes API server: {exc}", field="cloud") from None
        except pydantic.ValidationError as exc:  # an answer the client's models cannot hold
            raise ProviderError(f"the Kubernetes API server answered an unexpected shape: {exc}",
                                field="cloud") from None

    return call


def _status(exc: ApiException) -> tuple[str, str]:
    """(reason, message) of the ``Status`` body the API server sends with a failure."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    fallback = str(exc.reason or f"HTTP {exc.status}")
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("reason") or fallback), str(body.get("message") or fallback)
    return fallback, fallback


def _raise_for(exc: ApiException) -> NoReturn:
    status = int(exc.status or 0)
    reason, message = _status(exc)
    if status == 404:
        raise NotFound(message, field="resource") from None
    if status == 409:  # AlreadyExists, or Conflict: the object changed since it was read
        raise Conflict(message, field="resource") from None
    if status in (400, 422):  # BadRequest (undecodable) or Invalid (failed validation)
        raise InvalidInput(f"the cluster refused the request ({reason}): {message}", field="request") from None
    if status in (401, 403):
        raise ProviderError(f"the cluster refused cloudctl's credentials ({status} {reason}): {message}",
                            field="cloud") from None
    if status == 0:  # the client's own failures: TLS, an answer it cannot decode
        raise ProviderError(f"cannot talk to the Kubernetes API server: {exc.reason}", field="cloud") from None
    raise ProviderError(f"the Kubernetes API server answered {status} {reason}: {message}", field="cloud") from None


def _quantity(value: str) -> Decimal:
    try:
        return Decimal(parse_quantity(value))
    except ValueError:
        raise ProviderError(f"the cluster reported {value!r}, which is not a Kubernetes quantity",
                            field="cloud") from None


def _whole(values: Mapping[str, str], key: str, unit: int) -> int | None:
    """``values[key]`` in whole units (a core, a MiB, a GiB…), rounded up: 500m of CPU counts as a core."""
    value = values.get(key, values.get(ALIASES.get(key, key)))
    return None if value is None else math.ceil(_quantity(value) / unit)


def _hard(limits: QuotaLimits) -> dict[str, str]:
    """The quota's hard limits for cloudctl's; a limit that is None is left out (unlimited)."""
    hard: dict[str, str] = {}
    if limits.vcpus is not None:
        # Requests are what the scheduler reserves and what the unit pays for; limits only throttle, so
        # containers may burst to twice the cores the unit holds.
        hard["requests.cpu"] = str(limits.vcpus)
        hard["limits.cpu"] = str(2 * limits.vcpus)
    if limits.ram_mb is not None:
        # Memory cannot be throttled, only OOM-killed: no bursting past what was bought.
        hard["requests.memory"] = hard["limits.memory"] = f"{limits.ram_mb}Mi"
    if limits.instances is not None:
        hard["pods"] = str(limits.instances)
    if limits.disk_gb is not None:
        hard["requests.storage"] = f"{limits.disk_gb}Gi"
    return hard


class KubernetesProvider:
    kind = "kubernetes"

    def __init__(self, *, api_client: k8s.ApiClient, timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        # Every call is bounded: a console must not hang on a cluster that stopped answering.
        self.timeout = timeout

    @classmethod
    def from_kubeconfig(cls, context: str | None, config_file: str | None = None) -> KubernetesProvider:
        """A provider for a kubeconfig context (the current context if None; ~/.kube/config or $KUBECONFIG)."""
        try:
            # persist_config=False: refreshing a token must not rewrite the operator's kubeconfig.
            api_client = k8s_config.new_client_from_config(config_file=config_file, context=context,
                                                           persist_config=False)
        except (ConfigException, OSError, yaml.YAMLError) as exc:
            raise ProviderError(f"cannot configure Kubernetes context {context!r}: {exc}", field="connection") \
                from None
        return cls(api_client=api_client)

    def close(self) -> None:
        self.api_client.close()

    # -------------------------------------------------------------- namespaces and flavors

    @_translated
    def ensure_project(self, unit_code: str, unit_name: str) -> str:
        name = namespace_name(unit_code)
        namespace = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(
            name=name, labels={UNIT_LABEL: unit_code, MANAGED_BY_LABEL: MANAGER},
            annotations={UNIT_NAME_ANNOTATION: unit_name}))
        try:
            self.core.create_namespace(namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._adopt(name, unit_code)
        self._ensure_limit_range(name)
        return name

    def _adopt(self, name: str, unit_code: str) -> None:
        """An existing namespace is the unit's unless it is another unit's or is going away."""
        existing = self.core.read_namespace(name, _request_timeout=self.timeout)
        # Codes that differ only in case or punctuation ("D01", "d_01") map to one name: never share it.
        owner = ((existing.metadata.labels if existing.metadata else None) or {}).get(UNIT_LABEL)
        if owner is not None and owner != unit_code:
            raise Conflict(f"namespace {name} already belongs to unit {owner}", field="unit_code")
        if existing.status is not None and existing.status.phase == "Terminating":
            raise Conflict(f"namespace {name} is being deleted; try again once it is gone", field="unit_code")
        # A namespace made by hand before cloudctl (no unit label) is adopted as it is.

    def _ensure_limit_range(self, namespace: str) -> None:
        limit_range = k8s.V1LimitRange(
            metadata=k8s.V1ObjectMeta(name=LIMIT_RANGE_NAME, labels={MANAGED_BY_LABEL: MANAGER}),
            spec=k8s.V1LimitRangeSpec(limits=[k8s.V1LimitRangeItem(
                type="Container", default_request=dict(DEFAULT_REQUEST), default=dict(DEFAULT_LIMIT))]))
        try:
            self.core.create_namespaced_limit_range(namespace, limit_range, _request_timeout=self.timeout)
        except ApiException as exc:
            # One that exists is left alone: the platform team may have tuned a unit's defaults.
            if exc.status != 409:
                raise

    def list_flavors(self) -> list[Flavor]:
        return []  # pods state their own requests; there is no flavor catalogue

    # -------------------------------------------------------------- quotas

    def _read_quota(self, namespace: str) -> k8s.V1ResourceQuota | None:
        try:
            return self.core.read_namespaced_resource_quota(QUOTA_NAME, namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
        # No quota yet is an answer; no namespace is not (read_namespace raises its NotFound).
        self.core.read_namespace(namespace, _request_timeout=self.timeout)
        return None

    @_translated
    def get_quota(self, project: str) -> tuple[QuotaLimits, QuotaUsage]:
        quota = self._read_quota(project)
        if quota is None:
            return QuotaLimits(), QuotaUsage()
        hard = (quota.spec.hard if quota.spec else None) or {}
        # The quota controller fills status.used shortly after a quota is made; until then nothing is counted.
        used = (quota.status.used if quota.status else None) or {}
        return (
            QuotaLimits(vcpus=_whole(hard, "requests.cpu", 1), ram_mb=_whole(hard, "requests.memory", MIB),
                        disk_gb=_whole(hard, "requests.storage", GIB), instances=_whole(hard, "pods", 1)),
            QuotaUsage(vcpus=_whole(used, "requests.cpu", 1) or 0, ram_mb=_whole(used, "requests.memory", MIB) or 0,
                       disk_gb=_whole(used, "requests.storage", GIB) or 0, instances=_whole(used, "pods", 1) or 0),
        )

    @_translated
    def set_quota(self, project: str, limits: QuotaLimits) -> None:
        hard = _hard(limits)
        quota = self._read_quota(project)
        if quota is None:
            # No quota, no status.used to check against: ensure_project made the namespace empty, and a
            # namespace filled by hand before its first quota is the one case this cannot see.
            self.core.create_namespaced_resource_quota(project, k8s.V1ResourceQuota(
                metadata=k8s.V1ObjectMeta(name=QUOTA_NAME, labels={MANAGED_BY_LABEL: MANAGER}),
                spec=k8s.V1ResourceQuotaSpec(hard=hard)), _request_timeout=self.timeout)
            return
        # Kubernetes takes a limit under usage (it only blocks new pods); cloudctl never does that.
        used = (quota.status.used if quota.status else None) or {}
        for key, value in hard.items():
            in_use = used.get(key, used.get(ALIASES.get(key, key)))
            if in_use is not None and _quantity(in_use) > _quantity(value):
                raise Conflict(f"namespace {project} already uses {in_use} of {key}; the limit cannot go below it "
                               f"(asked for {value})", field=QUOTA_FIELDS[key])
        # Keys cloudctl does not manage (services, count/…) stay as the platform team set them.
        kept = {key: value for key, value in ((quota.spec.hard if quota.spec else None) or {}).items()
                if key not in QUOTA_FIELDS and key not in ALIASES.values()}
        if quota.spec is None:
            quota.spec = k8s.V1ResourceQuotaSpec()
        quota.spec.hard = {**kept, **hard}
        metadata = quota.metadata or k8s.V1ObjectMeta(name=QUOTA_NAME)
        metadata.labels = {**(metadata.labels or {}), MANAGED_BY_LABEL: MANAGER}
        quota.metadata = metadata
        # The replace carries the resourceVersion that was read: if usage moved since the check above,
        # the quota controller's status write changed it and the server answers 409 (a Conflict: retry).
        self.core.replace_namespaced_resource_quota(QUOTA_NAME, project, quota, _request_timeout=self.timeout)

    # -------------------------------------------------------------- servers: none on a container cloud

    def create_server(self, project: str, spec: ServerSpec) -> ServerInfo:
        raise InvalidInput(NOT_VMS, field="cloud")

    def find_server_by_tag(self, project: str, tag: str) -> ServerInfo | None:
        raise InvalidInput(NOT_VMS, field="cloud")

    def get_server(self, provider_id: str) -> ServerInfo:
        raise InvalidInput(NOT_VMS, field="cloud")

    def list_servers(self, project: str | None = None) -> list[ServerInfo]:
        return []  # listings (inventory, sync) simply find none here

    def server_action(self, provider_id: str, action: ServerAction) -> ServerInfo:
        raise InvalidInput(NOT_VMS, field="cloud")

    def resize_server(self, provider_id: str, flavor: str) -> ServerInfo:
        raise InvalidInput(NOT_VMS, field="cloud")

    def delete_server(self, provider_id: str) -> None:
        raise InvalidInput(NOT_VMS, field="cloud")

    # -------------------------------------------------------------- volumes: PersistentVolumeClaims, inventory only

    @_translated
    def list_volumes(self, project: str | None = None) -> list[VolumeInfo]:
        """The claims of cloudctl's namespaces (or of one) as volumes: the storage class is the volume type, the
        bound capacity (else the request) the size in whole GiB. Pods are no servers, so none is attached."""
        if project is not None:
            claims = self.core.list_namespaced_persistent_volume_claim(project, _request_timeout=self.timeout).items
        else:
            namespaces = self.core.list_namespace(label_selector=f"{MANAGED_BY_LABEL}={MANAGER}",
                                                  _request_timeout=self.timeout).items
            managed = {ns.metadata.name for ns in namespaces if ns.metadata is not None}
            claims = [c for c in self.core.list_persistent_volume_claim_for_all_namespaces(
                _request_timeout=self.timeout).items if c.metadata is not None and c.metadata.namespace in managed]
        found = []
        for claim in claims:
            meta, spec, status = claim.metadata, claim.spec, claim.status
            if meta is None or not meta.uid:
                continue
            size = ((status.capacity if status else None) or {}).get("storage") \
                or ((spec.resources.requests if spec and spec.resources else None) or {}).get("storage", "0")
            found.append(VolumeInfo(
                provider_id=str(meta.uid), name=str(meta.name), project=str(meta.namespace),
                volume_type=(spec.storage_class_name if spec else None) or "(default)",
                size_gib=math.ceil(_quantity(size) / GIB),
                status=((status.phase if status else None) or "Pending").lower(), attached_to=None,
                created_at=meta.creation_timestamp))
        return found

    def list_snapshots(self) -> list[SnapshotInfo]:
        return []  # VolumeSnapshots are a CRD the core API does not serve: none are read

    # -------------------------------------------------------------- capacity

    @_translated
    def capacity(self) -> list[ResourceCapacity]:
        """Allocatable CPU and memory of the schedulable nodes, against what cloudctl's quotas use.

        Allocatable already excludes what the kubelet reserves for the system, so reserved is 0;
        the scheduler places pods by requests without over-commit, so the ratio is 1.0. Used is
        the requests counted in cloudctl's quotas' status.used, not every pod on the nodes: the
        headroom is what units can still be given, in the terms their quotas are written in
        (pods outside cloudctl's namespaces, such as kube-system's, are left out).
        """
        cpu = memory = Decimal(0)
        for node in self.core.list_node(_request_timeout=self.timeout).items:
            if node.spec is not None and node.spec.unschedulable:
                continue  # cordoned for maintenance: takes no new pods
            allocatable = (node.status.allocatable if node.status else None) or {}
            cpu += _quantity(allocatable.get("cpu", "0"))
            memory += _quantity(allocatable.get("memory", "0"))
        used_cpu = used_memory = Decimal(0)
        quotas = self.core.list_resource_quota_for_all_namespaces(
            label_selector=f"{MANAGED_BY_LABEL}={MANAGER}", _request_timeout=self.timeout)
        for quota in quotas.items:
            used: dict[str, Any] = (quota.status.used if quota.status else None) or {}
            used_cpu += _quantity(used.get("requests.cpu", used.get("cpu", "0")))
            used_memory += _quantity(used.get("requests.memory", used.get("memory", "0")))
        return [
            # Whole cores and MiB: a fraction of a core cannot be handed out as a vCPU.
            ResourceCapacity("vcpus", math.floor(cpu), 0, 1.0, math.ceil(used_cpu)),
            ResourceCapacity("ram_mb", math.floor(memory / MIB), 0, 1.0, math.ceil(used_memory / MIB)),
        ]
