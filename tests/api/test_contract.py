"""The API's contract, fuzzed: schemathesis generates requests from the OpenAPI document for every operation and
checks each answer. No server error; every status code, media type and body is one the document declares.

A small city on SQLite, a department token and an administrator's, a fixed seed and a few examples per
operation, so the run costs a minute or two. Requests change the city as they go (a created unit stays), as a
client's would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, get_engine, session_scope
from cloudctl.core.migrate import upgrade
from tests.factories import build_mini_city
from tests.support.sandbox import SANDBOX

pytestmark = pytest.mark.slow
# Hypothesis keeps a cache beside the working directory; the run's own home holds it instead.
set_hypothesis_home_dir(SANDBOX / "hypothesis")

EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Who asks: a department bound to 市公安局 and the administrator, so both the scoped and the whole answers are seen.
ROLES = ("dept", "admin")


# Answers by status code over the run, and the operations seen: the figures the run closes with.
TALLY: Counter[int] = Counter()
OPERATIONS: set[str] = set()


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    data: Path = tmp_path_factory.mktemp("contract")
    reset_settings(Settings(data_dir=data, database_url=f"sqlite:///{data / 'cloudctl.db'}",
                            simulator_database_url=f"sqlite:///{data / 'simulator.db'}", simulator_build_seconds=0,
                            # /readyz answers 200 without a worker here (its 503 is tested in test_readiness).
                            ready_needs_worker=False))
    upgrade(get_engine())
    with session_scope() as session:
        city = build_mini_city(session, with_cloud=True)
    yield {role: city.tokens[role] for role in ROLES}
    reset_settings()
    dispose_engines()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TALLY:
        server_errors = sum(n for status, n in TALLY.items() if status >= 500)
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ncontract: {len(OPERATIONS)} operations fuzzed (each also with methods it "
                                f"does not allow), {sum(TALLY.values())} requests, {server_errors} server errors; "
                                f"by status {dict(sorted(TALLY.items()))}")


# The app reads its database from the settings at each request: the module's fixture points it at the small city.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())


@schema.parametrize()
@seed(20261204)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case: schemathesis.Case, tokens: dict[str, str]) -> None:
    OPERATIONS.add(case.operation.label)
    for role in ROLES:
        response = case.call(headers={"Authorization": f"Bearer {tokens[role]}"})
        TALLY[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
