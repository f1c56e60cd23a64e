"""A small Neutron double for a real Nova: the part of Neutron's v2.0 API that Nova asks for.

Nova boots, lists, resizes, shelves and deletes servers against it: it answers
``GET /v2.0/extensions`` (no extensions, so Nova takes its plain paths), and keeps
networks, subnets, ports, security groups (a ``default`` one per project, made on
first sight, as Neutron does) and floating IPs in memory, with Neutron's JSON
shapes: ``{"ports": [...]}`` for a list, ``{"port": {...}}`` for one, query filters
on any field (a field given twice matches either value), ``fields=`` projection,
and ``{"NeutronError": {...}}`` on 404. Tokens are not checked.

Standard library only, so it runs under any interpreter:

    python tests/support/neutron_double.py --port 9696        # serves on 127.0.0.1 until SIGTERM

or in-process: ``with NeutronDouble() as neutron: neutron.url``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["NeutronDouble", "NeutronState"]

# The collections the double keeps: URL segment -> (JSON key of the list, JSON key of one).
COLLECTIONS = {
    "networks": ("networks", "network"),
    "subnets": ("subnets", "subnet"),
    "ports": ("ports", "port"),
    "security-groups": ("security_groups", "security_group"),
    "security-group-rules": ("security_group_rules", "security_group_rule"),
    "floatingips": ("floatingips", "floatingip"),
    "routers": ("routers", "router"),
    "trunks": ("trunks", "trunk"),
}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _mac() -> str:
    raw = uuid.uuid4().bytes
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in raw[:3])


class NeutronError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class NeutronState:
    """The resources, in memory, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.items: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in COLLECTIONS}
        self.requests: list[tuple[str, str]] = []

    # -- defaults that Neutron fills in -----------------------------------------------------------

    def _defaults(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        project = body.get("project_id") or body.get("tenant_id") or ""
        base: dict[str, Any] = {"id": str(uuid.uuid4()), "name": "", "description": "", "project_id": project,
                                "tenant_id": project, "created_at": _now(), "updated_at": _now(),
                                "revision_number": 1, "tags": []}
        if collection == "networks":
            base.update({"admin_state_up": True, "status": "ACTIVE", "subnets": [], "shared": False,
                         "router:external": False, "mtu": 1450, "port_security_enabled": True,
                         "availability_zones": ["nova"], "ipv4_address_scope": None,
                         "ipv6_address_scope": None})
        elif collection == "subnets":
            base.update({"ip_version": 4, "enable_dhcp": True, "gateway_ip": None, "dns_nameservers": [],
                         "host_routes": [], "allocation_pools": [], "ipv6_ra_mode": None,
                         "ipv6_address_mode": None, "subnetpool_id": None})
        elif collection == "ports":
            base.update({"admin_state_up": True, "status": "DOWN", "mac_address": _mac(), "fixed_ips": [],
                         "device_id": "", "device_owner": "", "security_groups": [],
                         "allowed_address_pairs": [], "extra_dhcp_opts": [], "port_security_enabled": True,
                         "binding:host_id": "", "binding:vif_type": "unbound", "binding:vnic_type": "normal",
                         "binding:vif_details": {}, "binding:profile": {}, "dns_name": "",
                         "ip_allocation": "immediate", "propagate_uplink_status": False})
        elif collection == "security-groups":
            base.update({"security_group_rules": [], "stateful": True, "shared": False})
        elif collection == "security-group-rules":
            base.update({"direction": "ingress", "ethertype": "IPv4", "protocol": None,
                         "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
                         "remote_group_id": None, "security_group_id": None})
        elif collection == "floatingips":
            base.update({"status": "DOWN", "port_id": None, "fixed_ip_address": None,
                         "floating_ip_address": None, "router_id": None})
        base.update(body)
        if "project_id" in body and "tenant_id" not in body:
            base["tenant_id"] = body["project_id"]
        if "tenant_id" in body and "project_id" not in body:
            base["project_id"] = body["tenant_id"]
        return base

    def _default_group(self, project: str) -> None:
        """Neutron makes a project's ``default`` security group the first time it sees the project."""
        groups = self.items["security-groups"]
        if project and not any(g["name"] == "default" and g["project_id"] == project for g in groups.values()):
            group = self._defaults("security-groups", {"name": "default", "project_id": project,
                                                       "description": "Default security group"})
            groups[group["id"]] = group

    # -- the operations ---------------------------------------------------------------------------

    def list(self, collection: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        with self.lock:
            if collection == "security-groups":
                for key in ("project_id", "tenant_id"):
                    for project in query.get(key, []):
                        self._default_group(project)
            rows = []
            for item in self.items[collection].values():
                if all(self._matches(item, key, values) for key, values in query.items()
                       if key not in ("fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse")):
                    rows.append(item)
            return [self._project(item, query.get("fields")) for item in rows]

    @staticmethod
    def _matches(item: dict[str, Any], key: str, values: list[str]) -> bool:
        if key not in item:
            return False
        value = item[key]
        if isinstance(value, bool):
            return str(value).lower() in [v.lower() for v in values]
        if isinstance(value, list):  # e.g. fixed_ips=subnet_id=...: match any element's text
            return any(v in json.dumps(value) for v in values)
        return ("" if value is None else str(value)) in values

    @staticmethod
    def _project(item: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        if not fields:
            return dict(item)
        return {key: item[key] for key in fields if key in item}

    def show(self, collection: str, item_id: str, fields: list[str] | None = None) -> dict[str, Any]:
        with self.lock:
            item = self.items[collection].get(item_id)
            if item is None:
                raise NeutronError(404, _not_found_kind(collection), f"{_singular(collection)} {item_id} "
                                                                     "could not be found.")
            return self._project(item, fields)

    def create(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            item = self._defaults(collection, body)
            if collection == "ports":
                network = self.items["networks"].get(item.get("network_id", ""))
                if network is None:
                    raise NeutronError(404, "NetworkNotFound", f"Network {item.get('network_id')} could not "
                                                               "be found.")
                if not item["fixed_ips"]:
                    item["fixed_ips"] = [{"subnet_id": sid, "ip_address": self._next_ip(sid)}
                                         for sid in network["subnets"]]
                if not item["security_groups"] and item["project_id"] and item.get("port_security_enabled"):
                    self._default_group(item["project_id"])
                    item["security_groups"] = [g["id"] for g in self.items["security-groups"].values()
                                               if g["name"] == "default" and g["project_id"] == item["project_id"]]
            if collection == "subnets":
                network = self.items["networks"].get(item.get("network_id", ""))
                if network is not None:
                    network["subnets"].append(item["id"])
            if collection == "security-group-rules":
                group = self.items["security-groups"].get(item.get("security_group_id") or "")
                if group is not None:
                    group["security_group_rules"].append(item)
            self.items[collection][item["id"]] = item
            return dict(item)

    def _next_ip(self, subnet_id: str) -> str:
        used = sum(len(p["fixed_ips"]) for p in self.items["ports"].values())
        return f"10.0.{(used // 250) % 250}.{used % 250 + 2}"

    def update(self, collection: str, item_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            item = self.items[collection].get(item_id)
            if item is None:
                raise NeutronError(404, _not_found_kind(collection), f"{_singular(collection)} {item_id} "
                                                                     "could not be found.")
            item.update(body)
            if collection == "ports":
                bound = bool(item.get("binding:host_id")) and bool(item.get("device_id"))
                item["binding:vif_type"] = "ovs" if bound else "unbound"
                item["status"] = "ACTIVE" if bound else "DOWN"
            item["updated_at"] = _now()
            item["revision_number"] = int(item.get("revision_number", 1)) + 1
            return dict(item)

    def delete(self, collection: str, item_id: str) -> None:
        with self.lock:
            if self.items[collection].pop(item_id, None) is None:
                raise NeutronError(404, _not_found_kind(collection), f"{_singular(collection)} {item_id} "
                                                                     "could not be found.")


def _singular(collection: str) -> str:
    return COLLECTIONS[collection][1]


def _not_found_kind(collection: str) -> str:
    return "".join(part.capitalize() for part in _singular(collection).split("_")) + "NotFound"


class _Handler(BaseHTTPRequestHandler):
    server_version = "neutron-double/1"
    protocol_version = "HTTP/1.1"
    state: NeutronState  # set per server class

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Openstack-Request-Id", f"req-{uuid.uuid4()}")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: NeutronError) -> None:
        self._send(error.status, {"NeutronError": {"type": error.kind, "message": error.message, "detail": ""}})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        parts = [p for p in split.path.split("/") if p]
        self.state.requests.append((method, self.path))
        base = f"http://{self.headers.get('Host', '127.0.0.1')}"
        try:
            if not parts and method == "GET":
                self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                               "links": [{"rel": "self", "href": f"{base}/v2.0/"}]}]})
                return
            if parts[0] != "v2.0":
                raise NeutronError(404, "HTTPNotFound", f"no such path {split.path}")
            parts = parts[1:]
            if parts and parts[-1].endswith(".json"):
                parts[-1] = parts[-1][:-5]
            if not parts and method == "GET":
                self._send(200, {"resources": [{"name": _singular(c), "collection": c,
                                                "links": [{"rel": "self", "href": f"{base}/v2.0/{c}"}]}
                                               for c in COLLECTIONS]})
                return
            if parts == ["extensions"] and method == "GET":
                self._send(200, {"extensions": []})
                return
            if parts[0] == "extensions" and len(parts) == 2:
                raise NeutronError(404, "ExtensionNotFound", f"Extension with alias {parts[1]} does not exist")
            collection = parts[0]
            if collection not in COLLECTIONS:
                raise NeutronError(404, "HTTPNotFound", f"The resource could not be found: {split.path}")
            plural, singular = COLLECTIONS[collection]
            if len(parts) == 1 and method == "GET":
                self._send(200, {plural: self.state.list(collection, query)})
            elif len(parts) == 1 and method == "POST":
                body = self._body()
                if plural in body:  # bulk create
                    self._send(201, {plural: [self.state.create(collection, one) for one in body[plural]]})
                else:
                    self._send(201, {singular: self.state.create(collection, body.get(singular, {}))})
            elif len(parts) == 2 and method == "GET":
                self._send(200, {singular: self.state.show(collection, parts[1], query.get("fields"))})
            elif len(parts) == 2 and method == "PUT":
                self._send(200, {singular: self.state.update(collection, parts[1],
                                                             self._body().get(singular, {}))})
            elif len(parts) == 2 and method == "DELETE":
                self.state.delete(collection, parts[1])
                self._send(204)
            else:
                raise NeutronError(404, "HTTPNotFound", f"The resource could not be found: {split.path}")
        except NeutronError as error:
            self._error(error)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a hundred servers booting at once ask for their ports together


class NeutronDouble:
    """The double on 127.0.0.1 in a thread of this process (port 0: a free one)."""

    def __init__(self, port: int = 0) -> None:
        self.state = NeutronState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = _Server(("127.0.0.1", port), handler)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> NeutronDouble:
        self.thread = threading.Thread(target=self.server.serve_forever, name="neutron-double", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> NeutronDouble:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9696)
    args = parser.parse_args(argv)
    double = NeutronDouble(args.port)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=double.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"neutron double on {double.url}", flush=True)
    double.server.serve_forever()
    double.server.server_close()


if __name__ == "__main__":
    main()
