"""A run's switches of the write target (4 -> 5, 5 -> 4), on the product's switch protocol.

A switch runs in a thread of its own, so that the schedule's next actions (faults among them)
land while it freezes, fences and drains, as they would in production. One switch at a time:
the run joins the thread before its next phase change and before it heals. Each outcome is
counted by kind (``4->5``, ``5->4``, and ``... aborted`` / ``... refused`` / ``... failed``):

- *aborted*: the protocol ran out of ``cutover.max_write_pause_s`` (``SwitchAborted``: the old
  store takes the writes again, nothing lost), a legitimate outcome under faults;
- *refused*: the controller did not start it (the way back needs a healthy reverse replication);
- *failed*: anything else the controller raised (a server down under the operator).

The way back at the end of a run (:meth:`Switches.back_to_4`) waits for the reverse
replication to catch up and tries again, bounded, so that the run's checks see every phase-5
write in MySQL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from replicator.adapters import mysql
from replicator.control import names, open_control_store
from replicator.control.watermark import PipelineWatermark
from replicator.errors import ReplicatorError, SwitchAborted, TransitionError
from replicator.phase import open_phase_controller
from replicator.settings import MySQLSettings, Settings

CATCH_UP_WAIT_S = 30.0  # before 4 -> 5, the pipeline is waited for this long (the lag gate's job)
BACK_ATTEMPTS = 8  # tries of the way back at the end of a run
BACK_DEADLINE_S = 240.0


class Switches:
    def __init__(self, settings: Settings, admin: MySQLSettings, say: Callable[[str], None]) -> None:
        self.settings, self.admin, self.say = settings, admin, say
        self.counts: Counter[str] = Counter()
        self.notes: list[str] = []
        self._thread: threading.Thread | None = None
        self._phase: int | None = None  # the phase after the last switch, once known
        self.unanswered = 0  # control-store reads that failed while waiting (asked again)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, current: int, target: int) -> None:
        """Begin ``current`` -> ``target`` (4 -> 5 or 5 -> 4) in the background."""
        assert self._thread is None, "one switch at a time: join() first"
        self._thread = threading.Thread(target=self._run, args=(current, target),
                                        name=f"chaos-switch-{current}-{target}", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float = 120.0) -> int | None:
        """Wait for the switch in progress; the phase it left (None: no switch was running)."""
        if self._thread is None:
            return None
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"a switch of the write target did not return within {timeout_s:.0f} s")
        self._thread = None
        return self._phase

    def _run(self, current: int, target: int) -> None:
        if target == 5 and not self._pipeline_caught_up(CATCH_UP_WAIT_S):
            self.notes.append(f"the pipeline had not caught up after {CATCH_UP_WAIT_S:.0f} s: "
                              "4 -> 5 switched anyway (forced past the lag gate)")
        self._phase = self.once(current, target)

    def once(self, current: int, target: int) -> int:
        """One switch, its outcome counted; the phase after it."""
        kind = f"{current}->{target}"
        t0 = time.monotonic()
        try:
            with open_phase_controller(self.settings) as ctl:
                done = ctl.set_migration_phase(target, reason=f"chaos: switch {kind}", actor="chaos",
                                               force=True)
            phase = done.state.phase
            self.counts[kind] += 1
            self.say(f"      switch {kind} done in {time.monotonic() - t0:.1f} s (generation "
                     f"{done.state.generation})")
            return phase
        except SwitchAborted as exc:
            self.counts[f"{kind} aborted"] += 1
            self._note(f"switch {kind} aborted", exc)
        except TransitionError as exc:
            self.counts[f"{kind} refused"] += 1
            self._note(f"switch {kind} refused", exc)
        except ReplicatorError as exc:
            self.counts[f"{kind} failed"] += 1
            self._note(f"switch {kind} failed ({type(exc).__name__})", exc)
        return self.phase_now(default=current)

    def _note(self, what: str, exc: BaseException) -> None:
        self.notes.append(f"{what}: {str(exc)[:300]}")
        self.say(f"      {what}: {str(exc)[:200]}")

    def phase_now(self, default: int) -> int:
        """The phase in the store (``default`` when the store does not answer)."""
        try:
            with open_control_store(self.settings) as store:
                state = store.get_phase()
        except ReplicatorError:
            return default
        if state.frozen:
            self.notes.append(f"the phase document is still frozen after a switch: {state.reason}")
        return state.phase

    def frozen(self) -> str | None:
        """Why the phase document is frozen, or None (also None when the store does not answer)."""
        try:
            with open_control_store(self.settings) as store:
                state = store.get_phase()
        except ReplicatorError:
            return None
        return state.reason if state.frozen else None

    def back_to_4(self, tick: Callable[[], None]) -> int:
        """From phase 5 back to 4, tried again (bounded) while the reverse replication catches up;
        ``tick`` runs while waiting (the run restarts what exited). The phase it ends in."""
        deadline = time.monotonic() + BACK_DEADLINE_S
        phase = 5
        for attempt in range(BACK_ATTEMPTS):
            self._reverse_caught_up(min(30.0, max(0.0, deadline - time.monotonic())), tick)
            phase = self.once(5, 4)
            if phase != 5 or time.monotonic() > deadline:
                break
            self.say(f"      the way back to phase 4: attempt {attempt + 1} did not get there")
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                tick()
                time.sleep(0.5)
        return phase

    # ----------------------------------------------------------------- waits

    def _pipeline_caught_up(self, timeout_s: float) -> bool:
        """Has the pipeline applied what MySQL has committed now, within ``timeout_s``?"""
        try:
            conn: Any = mysql.connect(self.admin)
            try:
                with mysql.mysql_errors("reading the binlog position"), conn.cursor() as cur:
                    cur.execute("SELECT @@gtid_binlog_pos")
                    row = cur.fetchone()
            finally:
                conn.close()
            with open_control_store(self.settings) as store:
                return PipelineWatermark(store, self.settings).wait_applied(
                    [t.source for t in self.settings.tables], gtid=str(row[0]), timeout_s=timeout_s,
                    poll_s=0.2)
        except ReplicatorError as exc:
            self.notes.append(f"could not wait for the pipeline before 4 -> 5: {str(exc)[:200]}")
            return False

    def _reverse_caught_up(self, timeout_s: float, tick: Callable[[], None]) -> bool:
        """Until the reverse replication's heartbeat says it caught up after now, or ``timeout_s``."""
        since = time.time()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with open_control_store(self.settings) as store:
                    beat = store.get_marker(names.REVERSE_HEARTBEAT) or {}
                if float(beat.get("caught_up_at", 0)) > since:
                    return True
            except ReplicatorError:  # the control store restarting: asked again
                self.unanswered += 1
            tick()
            time.sleep(0.5)
        return False
