"""The baseline of bench/requests.py: a bare FastAPI POST that parses a body and touches no database."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/bare")
async def bare(body: dict[str, Any]) -> dict[str, str]:
    return {"status": "ok"}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
