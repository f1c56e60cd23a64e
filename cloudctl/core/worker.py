"""Job worker processes (``cloudctl job work``): one runner per OS process, any number of them on any machine.

Each process has its own connection pool and its own worker row (see :mod:`cloudctl.core.jobs`); they share
nothing but the database, so a worker killed at any moment costs only its lease: another takes its job over.
``--concurrency N`` starts N such processes (spawned, not forked: no engine or thread of the parent is copied)
and stops them all on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from types import FrameType

from cloudctl.core import jobs
from cloudctl.core.config import get_settings
from cloudctl.core.db import get_engine, set_process_kind
from cloudctl.core.logs import configure_logging

__all__ = ["run_worker", "run_workers"]

log = logging.getLogger(__name__)


def _load_handlers() -> None:
    # Importing the CLI imports every domain, and with them every job handler.
    import cloudctl.cli  # noqa: F401


def run_worker(once: bool = False, kinds: list[str] | None = None) -> int:
    """Run jobs in this process until SIGTERM/SIGINT (or, with ``once``, until nothing is runnable); returns how
    many jobs it ran when ``once``."""
    set_process_kind("worker")
    _load_handlers()
    runner = jobs.JobRunner(get_engine(), kinds=kinds)
    if once:
        count = 0
        while runner.run_once() is not None:
            count += 1
        return count

    def stop(_signum: int, _frame: FrameType | None) -> None:
        runner.request_stop()  # the loop ends after the job it is running; the lease covers a hard kill

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    log.info("worker %s: kinds %s", runner.owner, ", ".join(jobs.registered_kinds()))
    runner.run_forever()
    return 0


def _child(once: bool, kinds: list[str] | None, counts: multiprocessing.Queue[int]) -> None:
    configure_logging(logging.INFO, fmt=get_settings().log_format)
    counts.put(run_worker(once, kinds))


def run_workers(concurrency: int, *, once: bool = False, kinds: list[str] | None = None) -> int:
    """Run ``concurrency`` worker processes until they end (``once``) or this process is told to stop; returns
    the number of jobs they ran (``once``) or 0."""
    if concurrency == 1:
        return run_worker(once, kinds)
    context = multiprocessing.get_context("spawn")
    counts: multiprocessing.Queue[int] = context.Queue()
    children = [context.Process(target=_child, args=(once, kinds, counts), name=f"cloudctl-worker-{n}")
                for n in range(concurrency)]
    for child in children:
        child.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                child.terminate()  # SIGTERM: each stops after its current job

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    total = 0
    while not counts.empty():
        total += counts.get_nowait()
    failed = [child.name for child in children if child.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        log.warning("worker processes ended badly: %s", ", ".join(failed))
    return total
