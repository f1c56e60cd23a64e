"""The real OpenStack control plane for this tier, once per session.

``openstack_cloud`` brings it up with ``bringup.py`` (or reuses one already up, say from
``bringup.py up`` in a shell, and then leaves it up) and tears down what it started at
the end of the session. The bring-up starts in the background as soon as collection has
found a test of this tier, so it overlaps the rest of the suite. The tier is skipped when
``CLOUDCTL_SKIP_OPENSTACK=1``, unless ``CI`` is set: CI never skips it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.openstack import bringup

HERE = Path(__file__).resolve().parent


def openstack_skipped() -> bool:
    return os.environ.get("CLOUDCTL_SKIP_OPENSTACK", "") not in ("", "0") and not os.environ.get("CI")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.openstack)
            # One cloud, one worker: these tests share projects, quotas and computes, so with -n they run in turn
            # on one pytest-xdist worker (--dist loadgroup) instead of side by side.
            item.add_marker(pytest.mark.xdist_group("openstack"))
            if openstack_skipped():
                item.add_marker(pytest.mark.skip(reason="CLOUDCTL_SKIP_OPENSTACK=1 (outside CI)"))


class _Warmup:
    """The control plane brought up in a thread of its own from the start of the run.

    Bring-up is a minute or two of services starting, mostly waiting; begun when collection ends, it
    overlaps the rest of the suite instead of stalling the first OpenStack test.
    """

    def __init__(self) -> None:
        self._plane = bringup.control_plane()
        self._done = threading.Event()
        self._info: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._bring_up, name="openstack-bringup", daemon=True)
        self._thread.start()

    def _bring_up(self) -> None:
        try:
            self._info = self._plane.__enter__()
        except BaseException as exc:  # handed to the first test that needs the cloud
            self._error = exc
        finally:
            self._done.set()

    def info(self) -> dict[str, Any]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._info is not None
        return self._info

    def close(self) -> None:
        self._done.wait()  # never leave a half-started control plane behind
        if self._info is not None:
            self._info = None
            self._plane.__exit__(None, None, None)


_warmup: _Warmup | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    global _warmup
    if session.config.option.collectonly or openstack_skipped() or _warmup is not None:
        return
    if any(HERE in Path(str(item.path)).resolve().parents for item in session.items):
        _warmup = _Warmup()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _warmup is not None:
        _warmup.close()


@pytest.fixture(scope="session")
def openstack_cloud() -> Iterator[dict[str, Any]]:
    """The control plane's info (``cloud``, ``clouds_yaml``, ``image_id``, ``flavors``, ``computes``, ...);
    ``OS_CLIENT_CONFIG_FILE`` points at its clouds.yaml for the session."""
    global _warmup
    if openstack_skipped():
        pytest.skip("CLOUDCTL_SKIP_OPENSTACK=1 (outside CI)")
    if _warmup is None:  # selected after collection (never in a normal run): bring it up now
        _warmup = _Warmup()
    info = _warmup.info()
    previous = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = info["clouds_yaml"]
    try:
        yield json.loads(json.dumps(info))
    finally:
        if previous is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = previous
