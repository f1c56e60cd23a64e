"""Recorded-shape OpenStack API answers for requests-mock: Keystone, Nova, Placement.

The bodies follow the API references (Keystone v3 tokens, Nova 2.1 microversions,
Placement 1.x); the real control plane of the test suite replaces them later.
"""

from __future__ import annotations

import json
import re
from typing import Any

import openstack
import requests_mock

KEYSTONE = "http://keystone.test/v3"
NOVA = "http://nova.test/v2.1"
PLACEMENT = "http://placement.test"
ADMIN_PROJECT = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"


def _endpoint(service_type: str, name: str, url: str) -> dict[str, Any]:
    return {"type": service_type, "name": name, "id": f"{name}-id", "endpoints": [
        {"id": f"{name}-public", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": url}]}


def token_body(project_id: str = ADMIN_PROJECT) -> dict[str, Any]:
    return {"token": {
        "methods": ["password"], "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2026-11-22T00:00:00.000000Z", "audit_ids": ["a"],
        "user": {"id": "u-admin", "name": "cloudctl", "domain": {"id": "default", "name": "Default"},
                 "password_expires_at": None},
        "project": {"id": project_id, "name": "admin", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r-admin", "name": "admin"}],
        "catalog": [_endpoint("identity", "keystone", KEYSTONE), _endpoint("compute", "nova", NOVA),
                    _endpoint("placement", "placement", PLACEMENT)],
    }}


def install(m: requests_mock.Mocker) -> None:
    """The discovery and token answers every test needs."""
    m.post(f"{KEYSTONE}/auth/tokens", status_code=201, headers={"X-Subject-Token": "tok"},
           json=lambda request, context: token_body(
               (json.loads(request.body or "{}").get("auth", {}).get("scope", {}).get("project", {}) or {})
               .get("id", ADMIN_PROJECT)))
    m.get(KEYSTONE, json={"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                                      "links": [{"rel": "self", "href": f"{KEYSTONE}/"}],
                                      "media-types": [{"base": "application/json",
                                                       "type": "application/vnd.openstack.identity-v3+json"}]}})
    nova_version = {"id": "v2.1", "status": "CURRENT", "version": "2.95", "min_version": "2.1",
                    "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": f"{NOVA}/"}]}
    m.get(re.compile(r"^http://nova\.test/v2\.1/?$"), json={"version": nova_version})
    m.get(re.compile(r"^http://nova\.test/?$"), json={"versions": [nova_version]})
    m.get(re.compile(r"^http://placement\.test/?$"), json={"versions": [
        {"id": "v1.0", "max_version": "1.39", "min_version": "1.0", "status": "CURRENT",
         "links": [{"rel": "self", "href": ""}]}]})


def connection() -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_type="v3password",
        auth={"auth_url": KEYSTONE, "username": "cloudctl", "password": "secret", "project_id": ADMIN_PROJECT,
              "user_domain_id": "default"},
        region_name="RegionOne", compute_api_version="2.79", interface="public")
