"""Deadlines for the benchmarks: no wait in ``bench/`` is open-ended.

- :class:`Deadline` / :func:`wait_until`: each wait of a benchmark states what it waits for and
  for how long; running out raises :class:`BenchTimeout` naming it, with the progress seen.
- :func:`watchdog`: the backstop of ``python -m bench``. Past a benchmark's whole budget it
  raises :class:`BenchTimeout` in the main thread (SIGALRM), so the benchmark's clean-up runs;
  if that does not return within a grace period either (the main thread is stuck inside a C
  call), a watchdog thread prints what overran, kills the child processes the benchmark
  registered (:func:`register_child`) and ends the process with exit 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

GRACE_S = 60.0  # for a benchmark's clean-up after its budget ran out

_children: list[subprocess.Popen[bytes]] = []


class BenchTimeout(Exception):
    """A benchmark waited past its deadline; the message names what it waited for."""


class Deadline:
    """``seconds`` from now, for ``what`` (a phrase: "the writer to apply 4000 items")."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self, progress: str = "") -> None:
        """Raise :class:`BenchTimeout` once the deadline has passed."""
        if time.monotonic() >= self.at:
            seen = f" ({progress})" if progress else ""
            raise BenchTimeout(f"gave up after {self.seconds:.0f} s waiting for {self.what}{seen}")


def wait_until(done: Callable[[], bool], seconds: float, what: str, *, interval: float = 0.05,
               progress: Callable[[], str] | None = None) -> None:
    """Poll ``done`` every ``interval`` seconds until it is true or ``seconds`` have passed."""
    deadline = Deadline(seconds, what)
    while not done():
        deadline.check(progress() if progress else "")
        time.sleep(interval)


def register_child(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """A child process the watchdog kills if the benchmark overruns its grace period."""
    _children.append(proc)
    return proc


def forget_child(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ValueError):
        _children.remove(proc)


def _kill_children() -> None:
    for proc in list(_children):
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()


@contextlib.contextmanager
def watchdog(name: str, seconds: float) -> Iterator[None]:
    """Bound one benchmark (see the module docstring). Main thread only."""
    def overrun(_signum: int, _frame: object) -> None:
        raise BenchTimeout(f"{name} ran past its budget of {seconds:.0f} s (BENCH_BUDGET_S / "
                           f"the benchmark's BUDGET_S); its own deadlines did not fire first")

    hard = threading.Event()

    def last_resort() -> None:
        if hard.wait(seconds + GRACE_S):
            return
        print(f"{name}: still running {GRACE_S:.0f} s after its budget of {seconds:.0f} s, in a call "
              f"that cannot be interrupted; killing its child processes and exiting", file=sys.stderr,
              flush=True)
        _kill_children()
        os._exit(1)

    previous = signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    guard = threading.Thread(target=last_resort, name=f"watchdog-{name}", daemon=True)
    guard.start()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        hard.set()
        _kill_children()
        _children.clear()
