"""A throw-away Prometheus for the test suite and the benchmarks: its own directory under /tmp, on loopback.

Data can be backfilled before the server starts (``promtool tsdb create-blocks-from
openmetrics``), so a test reads days of history from a real TSDB a second after start.
Prometheus runs happily as root (CI runs the suite as root), so unlike PostgreSQL it is
started as whoever runs the suite. Each server has its own directory and port; servers left
behind by an earlier run, or started by another process, are never touched: stop() signals
only the PID it started.

    text = openmetrics_text(openmetrics_family("node_load1", [{"host": "a"}], timestamps, values))
    with PrometheusServer(openmetrics=text) as prom:
        prom.query("max_over_time(node_load1[1d])", time=timestamps[-1])
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time as _time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import yaml

__all__ = ["PrometheusServer", "openmetrics_family", "openmetrics_text"]

# Far longer than any backfilled history: Prometheus deletes blocks older than this (counted back from the newest
# block) when it starts, and test data is dated in the past on purpose.
RETENTION = "100y"
# promtool cuts backfilled blocks at this size (rounded down to 2h * 3^n, here 486h): one or two passes over the
# input instead of one per default 2h block, which makes backfilling days of data many times faster.
BACKFILL_MAX_BLOCK = "744h"  # 31 days, as a Go duration (no "d" unit there)
_START_ATTEMPTS = 3  # a free port can be taken by someone else between choosing it and binding it
_READY_TIMEOUT = 60.0
_INSTALL_HINT = ("install the Debian package `prometheus` (run ./scripts/test, which installs the Debian packages "
                 "the suite needs)")


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        raise RuntimeError(f"`{name}` not found: {_INSTALL_HINT}")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# -- OpenMetrics text for backfilling ----------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items())) + "}"


def _format_timestamps(timestamps: np.ndarray) -> list[str]:
    """Seconds, as OpenMetrics wants them; milliseconds are kept (the TSDB's own resolution), nothing finer."""
    millis = np.rint(np.asarray(timestamps, dtype=np.float64) * 1000).astype(np.int64)
    seconds, rest = np.divmod(millis, 1000)
    return [str(s) if r == 0 else f"{s}.{r:03d}" for s, r in zip(seconds.tolist(), rest.tolist(), strict=True)]


def openmetrics_family(name: str, labels: Sequence[Mapping[str, str]], timestamps: np.ndarray, values: np.ndarray,
                       *, kind: str = "gauge") -> str:
    """One metric family: ``len(labels)`` series, sampled at ``timestamps`` (seconds since the epoch).

    ``timestamps`` is one row shared by all series (shape ``(T,)``) or one row per series (``(N, T)``);
    ``values`` is ``(N, T)``. A NaN value means *no sample* there (a gap), not a stored NaN. Counters must
    be named with their ``_total`` suffix, as the exporters name them; the family name drops it.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    stamps = np.asarray(timestamps, dtype=np.float64)
    if values.shape[0] != len(labels):
        raise ValueError(f"{len(labels)} label sets for {values.shape[0]} rows of values")
    if stamps.ndim == 1:
        stamps = np.broadcast_to(stamps, values.shape)
    if stamps.shape != values.shape:
        raise ValueError(f"timestamps {stamps.shape} do not match values {values.shape}")
    family = name.removesuffix("_total") if kind == "counter" else name
    lines = [f"# TYPE {family} {kind}"]
    for series_labels, row_t, row_v in zip(labels, stamps, values, strict=True):
        prefix = f"{name}{_format_labels(series_labels)} "
        present = ~np.isnan(row_v)
        for stamp, value in zip(_format_timestamps(row_t[present]), row_v[present].tolist(), strict=True):
            lines.append(f"{prefix}{value!r} {stamp}")
    return "\n".join(lines) + "\n"


def openmetrics_text(*families: str) -> str:
    """A complete OpenMetrics document (families from :func:`openmetrics_family`, each name once) with its ``# EOF``."""
    return "".join(families) + "# EOF\n"


# -- the server ----------------------------------------------------------------------------------------------------


class PrometheusServer:
    """A Prometheus server of its own on 127.0.0.1, with optional backfilled history, scrape jobs and rules.

    ``openmetrics`` is the history to backfill before start: a :class:`~pathlib.Path` to an OpenMetrics file, or a
    ``str`` holding the OpenMetrics text itself. ``scrape_configs`` are Prometheus ``scrape_configs`` entries and
    ``rule_files`` rule files, both written into the server's prometheus.yml.
    """

    host = "127.0.0.1"

    def __init__(self, *, openmetrics: str | Path | None = None, scrape_configs: Sequence[Mapping[str, Any]] = (),
                 rule_files: Sequence[Path] = (), scrape_interval: str = "15s", evaluation_interval: str = "15s",
                 retention: str = RETENTION) -> None:
        self.prometheus = _binary("prometheus")
        self.promtool = _binary("promtool")
        self.openmetrics = openmetrics
        self.scrape_configs = [dict(config) for config in scrape_configs]
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.retention = retention
        self.port = 0
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.backfill_seconds = 0.0

    # -- paths, all inside one private directory -----------------------------------------------------------

    def _path(self, name: str) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / name

    @property
    def data(self) -> Path:
        return self._path("data")

    @property
    def config(self) -> Path:
        return self._path("prometheus.yml")

    @property
    def log(self) -> Path:
        return self._path("prometheus.log")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- start -----------------------------------------------------------------------------------------------

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.evaluation_interval},
            "scrape_configs": self.scrape_configs,
        }
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        result = subprocess.run([self.promtool, "check", "config", str(self.config)], capture_output=True, text=True,
                                check=False, timeout=60, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"promtool check config refused {self.config}:\n{result.stdout}\n{result.stderr}")

    def _backfill(self) -> None:
        if self.openmetrics is None:
            return
        if isinstance(self.openmetrics, Path):
            source = self.openmetrics
        else:
            source = self._path("backfill.om")
            source.write_text(self.openmetrics)
        started = _time.perf_counter()
        result = subprocess.run(
            [self.promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
             f"--max-block-duration={BACKFILL_MAX_BLOCK}", str(source), str(self.data)],
            capture_output=True, text=True, check=False, timeout=1800, stdin=subprocess.DEVNULL, cwd=self.root)
        self.backfill_seconds = _time.perf_counter() - started
        if source != self.openmetrics:
            source.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"promtool could not backfill {source} ({result.returncode}):\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")

    def _launch(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [self.prometheus, f"--config.file={self.config}", f"--storage.tsdb.path={self.data}",
                 f"--storage.tsdb.retention.time={self.retention}", f"--web.listen-address={self.host}:{self.port}",
                 "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root,
                start_new_session=True)  # our own process group: a ^C in the terminal does not reach it first

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> bool:
        """True when /-/ready answers 200; False when the process exited (e.g. the port was taken)."""
        deadline = _time.monotonic() + _READY_TIMEOUT
        while _time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return True
            _time.sleep(0.05)
        raise RuntimeError(f"Prometheus on {self.url} not ready after {_READY_TIMEOUT:.0f}s\n"
                           f"--- tail of {self.log} ---\n{_tail(self.log)}")

    def start(self) -> PrometheusServer:
        # Under /tmp, mode 0700: nobody else reads the data or writes the config.
        self.root = Path(tempfile.mkdtemp(prefix="cloudctl-prom-", dir="/tmp"))
        os.chmod(self.root, 0o700)
        self.data.mkdir()
        self._write_config()
        self._backfill()
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = _free_port()
            self.process = self._launch()
            if self._wait_ready(self.process):
                return self
            self.process.wait()
            log = _tail(self.log)
            self.process = None
            if "address already in use" not in log or attempt == _START_ATTEMPTS:
                raise RuntimeError(f"Prometheus did not start on {self.host}:{self.port}\n"
                                   f"--- tail of {self.log} ---\n{log}")
        raise AssertionError("unreachable")

    # -- stop --------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # never seen; but never leave a server behind either
                process.kill()
                process.wait(timeout=15)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PrometheusServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- reading back ----------------------------------------------------------------------------------------

    def query(self, promql: str, time: float | None = None) -> list[dict[str, Any]]:
        """Result of an instant query (``time`` in seconds since the epoch; now if None); raises on an error answer."""
        form = {"query": promql}
        if time is not None:
            if not math.isfinite(time):
                raise ValueError(f"time must be finite, not {time}")
            form["time"] = f"{time:.3f}"
        response = httpx.post(f"{self.url}/api/v1/query", data=form, timeout=60)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
