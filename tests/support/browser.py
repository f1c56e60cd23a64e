"""Headless Chromium (Debian's ``chromium``) for tests that look at a page as a person would.

Each call starts a fresh browser with its own throw-away profile, loads one URL (a file or a
loopback server), and either dumps the DOM after scripts ran or saves a screenshot. Nothing is
fetched from anywhere but the URL given: the pages under test are self-contained.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["artifact_dir", "chromium", "dump_dom", "screenshot"]



def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("headless Chromium not found: install the Debian package `chromium` "
                       "(./scripts/test does this itself)")


def artifact_dir() -> Path:
    """Where tests leave what a person may want to look at afterwards (screenshots); kept after the run.

    Under the temporary directory unless ``CLOUDCTL_TEST_ARTIFACTS`` names another: tests write nowhere else.
    """
    path = Path(os.environ.get("CLOUDCTL_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "cloudctl-test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(url: str, *extra: str, budget_ms: int = 5000, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="cloudctl-chromium-") as profile:
        return subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--disable-extensions", "--disable-background-networking",
             f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url],
            capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(url: str, *, budget_ms: int = 5000) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    result = _run(url, "--dump-dom", budget_ms=budget_ms)
    if result.returncode != 0 or "<html" not in result.stdout:
        raise RuntimeError(f"chromium could not load {url}: {result.stderr[-2000:]}")
    return result.stdout


def screenshot(url: str, out: Path, *, width: int = 1280, height: int = 1600, budget_ms: int = 5000) -> Path:
    result = _run(url, f"--screenshot={out}", f"--window-size={width},{height}", budget_ms=budget_ms)
    if result.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError(f"chromium took no screenshot of {url}: {result.stderr[-2000:]}")
    return out
