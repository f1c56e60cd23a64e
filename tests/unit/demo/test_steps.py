"""The domains' seeding steps run in one order, whichever module some other code imported first."""

from __future__ import annotations

from typing import Any

from cloudctl.demo.seed import DEMO_MODULES, _in_order


def _step(module: str) -> Any:
    def step(*_: Any) -> dict[str, int]:
        return {}

    step.__module__ = module
    return step


def test_steps_run_in_the_order_of_the_demo_modules_not_of_their_imports() -> None:
    # The extranet's demo was imported first (a test reading its wire plan), a module of a plug-in last.
    registered = [("plugin", _step("plugin.demo")), ("extranet", _step("cloudctl.extranet.demo")),
                  ("security", _step("cloudctl.security.demo")), ("compute", _step("cloudctl.compute.demo")),
                  ("reclaim", _step("cloudctl.reclaim.demo")), ("notify", _step("cloudctl.notify.demo")),
                  ("billing", _step("cloudctl.billing.demo"))]
    assert [name for name, _ in _in_order(registered)] == ["compute", "billing", "reclaim", "extranet", "security",
                                                           "notify", "plugin"]
    assert [step.__module__ for _, step in _in_order(registered)][:6] == list(DEMO_MODULES)
