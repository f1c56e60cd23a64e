"""200 concurrent requests over real HTTP that together ask for twice a unit's quota admit exactly what fits.

uvicorn serves the app on loopback in a thread; 64 clients at once also prove the API
does not deadlock when more requests want the database than there are threads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from cloudctl.compute import service
from cloudctl.compute.schemas import QuotaSet
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from tests.factories import ADMIN, MiniCity, build_mini_city


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> Iterator[tuple[str, MiniCity]]:
    reset_settings(Settings(data_dir=tmp_path / "d", database_url=fresh_url,
                            simulator_database_url=f"sqlite:///{tmp_path / 'sim.db'}"))
    with Session(fresh_engine) as session:
        city = build_mini_city(session, with_cloud=True)
        service.set_quota(session, ADMIN, "990100-D01", "test-cloud",
                          QuotaSet(vcpus=200, ram_gib=1000, instances=1000))
        session.commit()
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning",
                                       access_log=False))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert uv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", city
    uv.should_exit = True
    thread.join(10)
    reset_settings()
    dispose_engines()


def test_two_hundred_requests_for_twice_the_quota(server: tuple[str, MiniCity]) -> None:
    base, city = server
    headers = {"Authorization": f"Bearer {city.tokens['dept']}"}
    body = {"business_system": city.systems["own"], "cloud": "test-cloud", "justification": "并发申请测试",
            "items": [{"flavor": "c2m4", "count": 1}]}  # 2 vCPU each: 400 in all, twice the quota

    async def run() -> list[str]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
            responses = await asyncio.gather(*(client.post("/api/v1/requests", json=body) for _ in range(200)))
        assert {r.status_code for r in responses} == {201}, [r.text for r in responses if r.status_code != 201][:3]
        return [r.json()["status"] for r in responses]

    statuses = asyncio.run(run())
    assert statuses.count("approved") == 100  # 200 vCPU of quota / 2 vCPU each
    assert statuses.count("submitted") == 100
    listed = httpx.get(f"{base}/api/v1/requests?status=approved&limit=1000", headers=headers).json()
    assert listed["total"] == 100
    quota = httpx.get(f"{base}/api/v1/quotas", headers=headers).json()["items"][0]
    assert (quota["reserved_vcpus"], quota["limit_vcpus"]) == (200, 200)
