"""The real OpenStack control plane for this tier, once per session.

``openstack_cloud`` brings it up with ``bringup.py`` (or reuses one already up, say from
``bringup.py up`` in a shell, and then leaves it up) and tears down what it started at
the end of the session. The tier is skipped when ``CLOUDCTL_SKIP_OPENSTACK=1``, unless
``CI`` is set: CI never skips it.
"""

from __future__ import annotations

import json
import os
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
            if openstack_skipped():
                item.add_marker(pytest.mark.skip(reason="CLOUDCTL_SKIP_OPENSTACK=1 (outside CI)"))


@pytest.fixture(scope="session")
def openstack_cloud() -> Iterator[dict[str, Any]]:
    """The control plane's info (``cloud``, ``clouds_yaml``, ``image_id``, ``flavors``, ``computes``, ...);
    ``OS_CLIENT_CONFIG_FILE`` points at its clouds.yaml for the session."""
    if openstack_skipped():
        pytest.skip("CLOUDCTL_SKIP_OPENSTACK=1 (outside CI)")
    previous = os.environ.get("OS_CLIENT_CONFIG_FILE")
    with bringup.control_plane() as info:
        os.environ["OS_CLIENT_CONFIG_FILE"] = info["clouds_yaml"]
        try:
            yield json.loads(json.dumps(info))
        finally:
            if previous is None:
                os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
            else:
                os.environ["OS_CLIENT_CONFIG_FILE"] = previous
