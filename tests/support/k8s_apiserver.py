"""A Kubernetes API server double that the real ``kubernetes`` client talks to over HTTP on loopback.

Core v1 only, and only what cloudctl's adapter touches: namespaces, resource quotas,
limit ranges and nodes. Objects live in memory; answers carry the API server's JSON
shapes (list items without kind/apiVersion, as the server sends them), its status
codes and its ``Status`` bodies with the same reasons and messages. Validation covers
what a cloudctl bug or a bad unit code could trip: names (RFC 1123), labels,
quantities (an unparseable one is a 400 at decode time, a negative quota a 422),
preconditions on resourceVersion (409), and namespaced writes into a namespace that
does not exist (404). The quota controller is played by :meth:`set_usage`:
``status.used`` holds, for each key of ``spec.hard``, what the test said is in use.

    with KubeApiServerDouble(nodes=[Node("node-1", cpu="31500m", memory="126Gi")]) as server:
        server.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import secrets
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["KubeApiServerDouble", "Node", "parse_quantity"]

Obj = dict[str, Any]

# apimachinery's own pattern, quoted in its error messages.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ROUTE = re.compile(r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[a-z]+)(?:/(?P<name>[^/]+))?/?$")
_LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
_LIMIT_FIELDS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes quantity ("500m", "2", "4Gi", "1e3") as a number; ValueError if it is not one.

    The double's own parser, so that a mistake in the client's ``parse_quantity`` is not hidden.
    """
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'") from None
    if suffix in _BINARY_SUFFIXES:
        return base * Decimal(1024) ** _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return base.scaleb(_DECIMAL_SUFFIXES[suffix])
    if suffix[:1] in ("e", "E") and re.fullmatch(r"[-+]?[0-9]+", suffix[1:]):
        return base.scaleb(int(suffix[1:]))
    raise ValueError("unable to parse quantity's suffix")


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the double's cluster; ``capacity`` defaults to the allocatable amounts."""

    name: str
    cpu: str
    memory: str
    pods: str = "110"
    unschedulable: bool = False
    capacity_cpu: str | None = None
    capacity_memory: str | None = None


@dataclass(frozen=True, slots=True)
class _Kind:
    resource: str  # the plural in URLs and in Status details
    kind: str
    namespaced: bool


_KINDS = {k.resource: k for k in (
    _Kind("namespaces", "Namespace", namespaced=False),
    _Kind("nodes", "Node", namespaced=False),
    _Kind("resourcequotas", "ResourceQuota", namespaced=True),
    _Kind("limitranges", "LimitRange", namespaced=True),
    _Kind("persistentvolumeclaims", "PersistentVolumeClaim", namespaced=True),
)}


class _ApiError(Exception):
    """An answer other than success, as the server's ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code}
        if details is not None:
            self.body["details"] = details


def _not_found(kind: _Kind, name: str) -> _ApiError:
    return _ApiError(404, "NotFound", f'{kind.resource} "{name}" not found', {"name": name, "kind": kind.resource})


def _bad_request(message: str) -> _ApiError:
    return _ApiError(400, "BadRequest", message)


def _invalid(kind: _Kind, name: str, causes: list[tuple[str, str, str]]) -> _ApiError:
    """422 Invalid from (reason, field, message) causes, worded as the API server words them."""
    parts = [f"{field}: {message}" for _, field, message in causes]
    summary = parts[0] if len(parts) == 1 else f"[{', '.join(parts)}]"
    return _ApiError(422, "Invalid", f'{kind.kind} "{name}" is invalid: {summary}', {
        "name": name, "kind": kind.kind,
        "causes": [{"reason": reason, "message": message, "field": field} for reason, field, message in causes]})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patch is the same for the maps these kinds hold)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _split_selector(selector: str) -> list[str]:
    """Split a label selector on the commas that are not inside ``in (a, b)``."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def _selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Equality (``=``, ``==``, ``!=``), set (``in``, ``notin``) and existence (``k``, ``!k``) requirements."""
    for requirement in _split_selector(selector):
        if match := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", requirement):
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if (op == "in") != (labels.get(key) in values if key in labels else False):
                return False
        elif match := re.fullmatch(r"([^\s!=]+)\s*(==|=|!=)\s*([^\s!=]*)", requirement):
            key, op, value = match.groups()
            if (op == "!=") == (labels.get(key) == value):
                return False
        elif match := re.fullmatch(r"(!?)([^\s!=(),]+)", requirement):
            if (match.group(1) == "!") == (match.group(2) in labels):
                return False
        else:
            raise _bad_request(f"unable to parse requirement: found '{requirement}', expected: in, notin, =, ==, "
                               "!=, gt, lt")
    return True


def _label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
    if not name or len(name) > 63 or not _LABEL_VALUE.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                "an alphanumeric character")
    return None


class KubeApiServerDouble:
    """The double: start it (or use it as a context manager), point a kubeconfig at :attr:`url`."""

    def __init__(self, *, nodes: Iterable[Node] = (), token: str | None = None) -> None:
        self.token = token
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request answered
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._usage: dict[str, dict[str, str]] = {}
        self._failures: list[tuple[str, str, _ApiError]] = []
        self._versions = itertools.count(1000)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        for node in nodes:
            self._add_node(node)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the API server double is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KubeApiServerDouble:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        cast(Any, self._httpd).double = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="k8s-apiserver-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut the kept-alive connections, so a client's next call is refused."""
        if self._httpd is None or self._thread is None:
            return  # never started, or stopped already
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections, self._connections = set(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> KubeApiServerDouble:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def kubeconfig_dict(self, context: str = "gov-k8s", *, token: str | None = None) -> Obj:
        """A kubeconfig for this server: no auth, or a static bearer token (the server's unless given)."""
        user: Obj = {}
        if token or self.token:
            user["token"] = token or self.token
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-cloudctl", "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-cloudctl"}}],
            "current-context": context,
        }

    def write_kubeconfig(self, path: str | Path, context: str = "gov-k8s", *, token: str | None = None) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.kubeconfig_dict(context, token=token), sort_keys=False))
        return path

    # ------------------------------------------------------------------ what a test sets and reads

    def set_usage(self, namespace: str, usage: Mapping[str, str]) -> None:
        """What the namespace's pods use ("requests.cpu": "3", "pods": "5"), as the quota controller sees it."""
        with self._lock:
            self._usage[namespace] = {key: str(value) for key, value in usage.items()}
            for (resource, ns, _), obj in self._objects.items():
                if resource == "resourcequotas" and ns == namespace:
                    self._quota_status(obj)
                    obj["metadata"]["resourceVersion"] = self._next_version()

    def bind_claim(self, namespace: str, name: str, capacity: str) -> None:
        """The volume controller bound the claim to a volume of ``capacity`` ("20Gi"): its status says so."""
        with self._lock:
            claim = self._read(_KINDS["persistentvolumeclaims"], namespace, name)
            claim["status"] = {"phase": "Bound", "accessModes": claim["spec"].get("accessModes", []),
                               "capacity": {"storage": capacity}}
            claim["metadata"]["resourceVersion"] = self._next_version()

    def get(self, resource: str, name: str, namespace: str = "") -> Obj | None:
        """A stored object as the server holds it (a copy), or None."""
        with self._lock:
            found = self._objects.get((resource, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def fail_next(self, method: str, path: str, *, code: int, reason: str, message: str) -> None:
        """Answer the next ``method`` request on ``path`` with this failure (a 500, a 403…) instead."""
        with self._lock:
            self._failures.append((method.upper(), path, _ApiError(code, reason, message)))

    # ------------------------------------------------------------------ the API

    def handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Obj]:
        url = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append((method, url.path))
            try:
                return self._route(method, url.path, query, headers, raw)
            except _ApiError as error:
                return error.code, error.body

    def _route(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
               raw: bytes) -> tuple[int, Obj]:
        for index, (fail_method, fail_path, error) in enumerate(self._failures):
            if fail_method == method and fail_path == path:
                del self._failures[index]
                raise error
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            raise _ApiError(401, "Unauthorized", "Unauthorized")
        match = _ROUTE.match(path)
        kind = _KINDS.get(match.group("resource")) if match else None
        if match is None or kind is None or (match.group("ns") is not None and not kind.namespaced):
            raise _ApiError(404, "NotFound", "the server could not find the requested resource",
                            {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
        ns = unquote(match.group("ns") or "")
        name = unquote(match.group("name") or "")
        if kind.namespaced and not ns and (name or method != "GET"):
            raise _ApiError(404, "NotFound", "the server could not find the requested resource")
        if not name and method == "GET":
            return 200, self._list(kind, ns, query.get("labelSelector", ""))
        if not name and method == "POST":
            return 201, self._create(kind, ns, self._decode(kind, raw))
        if name and method == "GET":
            return 200, copy.deepcopy(self._read(kind, ns, name))
        if name and method == "PUT":
            return 200, self._update(kind, ns, name, self._decode(kind, raw))
        if name and method == "PATCH":
            content_type = headers.get("Content-Type", "").split(";")[0].strip()
            if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                raise _ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                f"accepted media types include: application/merge-patch+json, "
                                f"application/strategic-merge-patch+json (got {content_type or 'none'})")
            patched = _merge_patch(self._read(kind, ns, name), self._decode(kind, raw, check_kind=False))
            return 200, self._update(kind, ns, name, patched)
        if name and method == "DELETE":
            return 200, self._delete(kind, ns, name)
        raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _decode(self, kind: _Kind, raw: bytes, *, check_kind: bool = True) -> Obj:
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise _bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        if not isinstance(body, dict):
            raise _bad_request(f"{kind.kind} in version \"v1\" cannot be handled as a {kind.kind}: "
                               "json: cannot unmarshal into Go value of type struct")
        if check_kind and (body.get("apiVersion", "v1"), body.get("kind", kind.kind)) != ("v1", kind.kind):
            raise _bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
                               f"API version (v1) or the kind ({body.get('kind')}) is not {kind.kind}")
        return body

    def _next_version(self) -> str:
        return str(next(self._versions))

    def _read(self, kind: _Kind, ns: str, name: str) -> Obj:
        found = self._objects.get((kind.resource, ns, name))
        if found is None:
            raise _not_found(kind, name)
        return found

    def _list(self, kind: _Kind, ns: str, selector: str) -> Obj:
        items = []
        for (resource, obj_ns, _), obj in sorted(self._objects.items()):
            if resource != kind.resource or (ns and obj_ns != ns):
                continue
            if selector and not _selector_matches(selector, obj["metadata"].get("labels") or {}):
                continue
            # The server leaves kind and apiVersion off the items of a list.
            items.append({key: value for key, value in copy.deepcopy(obj).items() if key not in ("kind", "apiVersion")})
        return {"kind": f"{kind.kind}List", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(next(self._versions))}, "items": items}

    def _create(self, kind: _Kind, ns: str, body: Obj) -> Obj:
        obj = self._validated(kind, ns, body)
        name = obj["metadata"]["name"]
        if kind.namespaced and ("namespaces", "", ns) not in self._objects:
            raise _not_found(_KINDS["namespaces"], ns)
        if (kind.resource, ns, name) in self._objects:
            raise _ApiError(409, "AlreadyExists", f'{kind.resource} "{name}" already exists',
                            {"name": name, "kind": kind.resource})
        obj["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=self._next_version(),
                               creationTimestamp=_now())
        self._complete(kind, obj, None)
        self._objects[(kind.resource, ns, name)] = obj
        return copy.deepcopy(obj)

    def _update(self, kind: _Kind, ns: str, name: str, body: Obj) -> Obj:
        stored = self._read(kind, ns, name)
        obj = self._validated(kind, ns, body, url_name=name)
        if obj["metadata"]["name"] != name:
            raise _bad_request(f"the name of the object ({obj['metadata']['name']}) does not match the name on "
                               f"the URL ({name})")
        version = obj["metadata"].get("resourceVersion")
        # An update without a resourceVersion is unconditional, as the server allows for these kinds.
        if version and version != stored["metadata"]["resourceVersion"]:
            raise _ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.resource} "{name}": the object '
                            "has been modified; please apply your changes to the latest version and try again",
                            {"name": name, "kind": kind.resource})
        obj["metadata"].update(uid=stored["metadata"]["uid"], creationTimestamp=stored["metadata"]["creationTimestamp"],
                               resourceVersion=self._next_version())
        self._complete(kind, obj, stored)
        self._objects[(kind.resource, ns, name)] = obj
        return copy.deepcopy(obj)

    def _delete(self, kind: _Kind, ns: str, name: str) -> Obj:
        obj = self._read(kind, ns, name)
        del self._objects[(kind.resource, ns, name)]
        if kind.resource == "namespaces":
            # The namespace controller empties it; here at once, and the answer shows it terminating.
            for key in [key for key in self._objects if key[1] == name]:
                del self._objects[key]
            self._usage.pop(name, None)
            obj["metadata"]["deletionTimestamp"] = _now()
            obj["status"] = {"phase": "Terminating"}
        return copy.deepcopy(obj)

    # ------------------------------------------------------------------ validation and server-set fields

    def _validated(self, kind: _Kind, ns: str, body: Obj, *, url_name: str | None = None) -> Obj:
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = "v1", kind.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise _bad_request(f'{kind.kind} in version "v1" cannot be handled as a {kind.kind}: metadata must be '
                               "an object")
        if not meta.get("name") and meta.get("generateName") and url_name is None:
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        name = str(meta.get("name") or "")
        if kind.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise _bad_request("the namespace of the provided object does not match the namespace sent on the "
                                   "request")
            meta["namespace"] = ns
        for key in ("labels", "annotations"):
            if not isinstance(meta.get(key) or {}, dict) or not all(
                    isinstance(v, str) for v in (meta.get(key) or {}).values()):
                raise _bad_request(f'{kind.kind} in version "v1" cannot be handled as a {kind.kind}: '
                                   f"metadata.{key} must map strings to strings")
        causes: list[tuple[str, str, str]] = []
        if not name:
            causes.append(("FieldValueRequired", "metadata.name",
                           "Required value: name or generateName is required"))
        elif kind.resource == "namespaces" and (len(name) > 63 or not _DNS_LABEL.match(name)):
            causes.append(("FieldValueInvalid", "metadata.name",
                           f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                           "alphanumeric characters or '-', and must start and end with an alphanumeric character"))
        elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            causes.append(("FieldValueInvalid", "metadata.name",
                           f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                           "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                           "character"))
        for key, value in (meta.get("labels") or {}).items():
            if problem := _label_key_problem(key):
                causes.append(("FieldValueInvalid", "metadata.labels", f'Invalid value: "{key}": {problem}'))
            if len(value) > 63 or not _LABEL_VALUE.match(value):
                causes.append(("FieldValueInvalid", "metadata.labels",
                               f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                               "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                               "alphanumeric character"))
        if kind.resource == "resourcequotas":
            causes += self._quota_causes(kind, obj)
        elif kind.resource == "limitranges":
            causes += self._limit_range_causes(kind, obj)
        if causes:
            raise _invalid(kind, name, causes)
        return obj

    @staticmethod
    def _quantity(kind: _Kind, value: object) -> Decimal:
        try:
            return parse_quantity(value)
        except ValueError as exc:
            # Quantities are parsed while the body is decoded: a malformed one is a 400, not a 422.
            raise _bad_request(f'{kind.kind} in version "v1" cannot be handled as a {kind.kind}: {exc}') from None

    def _quota_causes(self, kind: _Kind, obj: Obj) -> list[tuple[str, str, str]]:
        hard = (obj.get("spec") or {}).get("hard") or {}
        causes = []
        for key, value in hard.items():
            if self._quantity(kind, value) < 0:
                causes.append(("FieldValueInvalid", f"spec.hard[{key}]",
                               f'Invalid value: "{value}": must be greater than or equal to 0'))
        return causes

    def _limit_range_causes(self, kind: _Kind, obj: Obj) -> list[tuple[str, str, str]]:
        limits = (obj.get("spec") or {}).get("limits")
        if not isinstance(limits, list):
            return [("FieldValueRequired", "spec.limits", "Required value")]
        causes = []
        for index, item in enumerate(limits):
            if item.get("type") not in _LIMIT_TYPES:
                causes.append(("FieldValueNotSupported", f"spec.limits[{index}].type",
                               f'Unsupported value: "{item.get("type", "")}": supported values: '
                               + ", ".join(f'"{t}"' for t in _LIMIT_TYPES)))
            amounts = {field: {key: self._quantity(kind, value) for key, value in (item.get(field) or {}).items()}
                       for field in _LIMIT_FIELDS}
            for resource, request in amounts["defaultRequest"].items():
                limit = amounts["default"].get(resource)
                if limit is not None and request > limit:
                    causes.append(("FieldValueInvalid", f"spec.limits[{index}].defaultRequest[{resource}]",
                                   f'Invalid value: "{item["defaultRequest"][resource]}": default request value '
                                   "must be less than or equal to default limit value"))
        return causes

    def _complete(self, kind: _Kind, obj: Obj, stored: Obj | None) -> None:
        """The fields the server sets itself; status is a subresource, so a write never sets it."""
        obj.pop("status", None)
        meta = obj["metadata"]
        if kind.resource == "namespaces":
            meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta["name"]}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = (stored or {}).get("status") or {"phase": "Active"}
        elif kind.resource == "resourcequotas":
            self._quota_status(obj)
        elif kind.resource == "nodes" and stored is not None:
            obj["status"] = stored["status"]
        elif kind.resource == "persistentvolumeclaims":
            obj["status"] = (stored or {}).get("status") or {"phase": "Pending"}

    def _quota_status(self, quota: Obj) -> None:
        hard: dict[str, str] = dict((quota.get("spec") or {}).get("hard") or {})
        usage = self._usage.get(quota["metadata"]["namespace"], {})
        aliases = {"cpu": "requests.cpu", "memory": "requests.memory", "requests.cpu": "cpu",
                   "requests.memory": "memory"}
        used = {key: usage.get(key) or usage.get(aliases.get(key, key)) or "0" for key in hard}
        quota["status"] = {"hard": hard, "used": used}

    def _add_node(self, node: Node) -> None:
        allocatable = {"cpu": node.cpu, "memory": node.memory, "pods": node.pods, "ephemeral-storage": "95551679124"}
        capacity = {**allocatable, "cpu": node.capacity_cpu or node.cpu, "memory": node.capacity_memory or node.memory,
                    "ephemeral-storage": "103736160Ki"}
        obj: Obj = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": node.name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_version(),
                         "creationTimestamp": _now(),
                         "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64"}},
            "spec": {"unschedulable": True} if node.unschedulable else {},
            "status": {
                "capacity": capacity, "allocatable": allocatable,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status", "lastHeartbeatTime": _now(),
                                "lastTransitionTime": _now()}],
                "addresses": [{"type": "Hostname", "address": node.name}],
            },
        }
        self._objects[("nodes", "", node.name)] = obj


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server_version = "kube-apiserver-double"
    timeout = 30  # an idle kept-alive connection frees its thread
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    @property
    def double(self) -> KubeApiServerDouble:
        return cast(KubeApiServerDouble, cast(Any, self.server).double)

    def setup(self) -> None:
        super().setup()
        with self.double._lock:
            self.double._connections.add(self.connection)

    def finish(self) -> None:
        with self.double._lock:
            self.double._connections.discard(self.connection)
        super().finish()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.title(): value for key, value in self.headers.items()}
        code, body = self.double.handle(self.command, self.path, headers, raw)
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests' output stays the tests'
