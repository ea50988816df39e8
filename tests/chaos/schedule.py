"""A run's random schedule: faults and operator actions, drawn from the run's seed alone.

Pure: the same seed gives the same schedule (which process, which link, how long, in what
order), so a failing seed replays the same faults; the timing of the processes under them
varies from run to run as it does in production.

Fault kinds (the ``kind`` counted in the report):

- ``kill9``: SIGKILL one process, start it again ``hold_s`` later;
- ``pause``: SIGSTOP one process for longer than the writers' consumer session (10 s) and the
  clients' lease, then SIGCONT (a zombie that wakes up after its partitions moved on);
- ``restart_kafka`` / ``restart_mariadb`` / ``restart_redis``: the server restarted by
  ``scripts/stack.py``;
- ``dynamodb_throttle`` / ``dynamodb_5xx``: a share of DynamoDB requests answered with
  ``ProvisionedThroughputExceededException`` or 500/503 for ``hold_s``;
- ``net_cut`` (refused) / ``net_blackhole`` (silent) / ``net_latency``: one process's link to one
  server, for ``hold_s``.

Operator actions: ``phase`` (forward one step or a rollback, rollbacks to 1 included, forced
past the soak gates; from 4 sometimes the switch to 5, from 5 the switch back to 4), ``switch``
(the write target: to phase 5, walking forward to 4 first, or back from 5 to 4, on the switch
protocol of DESIGN §3.6), ``ddl`` (a column added to the live table), ``blob`` (a row too big for
DynamoDB, which must reach the dead-letter topic) and ``blob_small``.

Phase 5 came later: its actions (the switches, one fault of the reverse replication) are drawn
from a second stream of the seed and inserted into the schedule the first stream draws, so a
seed's faults and operator actions from before are all still there, in the same order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

PROCESSES = ("reader", "writer-a", "writer-b", "validator", "backfill", "app")  # the first stream's
REVERSE = "reverse"  # the reverse replication (phase 5): its faults come from the second stream
LINKS = {  # the servers each process reaches (Kafka is not proxied: see proxies.py)
    "reader": ("mysql", "redis"),
    "writer-a": ("dynamodb", "redis"),
    "writer-b": ("dynamodb", "redis"),
    "validator": ("mysql", "dynamodb", "redis"),
    "backfill": ("mysql", "redis"),
    "app": ("mysql", "dynamodb", "redis"),
    REVERSE: ("mysql", "dynamodb", "redis"),
}
FAULT_WEIGHTS = {
    "kill9": 6, "pause": 2, "restart_kafka": 1, "restart_mariadb": 1, "restart_redis": 1,
    "dynamodb_throttle": 2, "dynamodb_5xx": 2, "net_cut": 2, "net_blackhole": 1, "net_latency": 2,
}
FAULT_KINDS = tuple(FAULT_WEIGHTS)
PAUSE_S = (11.0, 14.0)  # above the writers' session.timeout.ms (10 s) and cutover.lease_ttl_s
REVERSE_FAULTS = ("kill9", "pause", "net_cut", "net_blackhole", "net_latency")
SWITCH_SHARE = 0.7  # runs with a switch to phase 5 (of those, SWITCH_BACK_SHARE switch back on schedule)
SWITCH_BACK_SHARE = 0.6
PHASE5_FROM_4 = 0.5  # a ``phase`` action in phase 4 that switches to 5


@dataclass(frozen=True)
class Action:
    kind: str
    target: str = ""  # a process, a link ("writer-a.dynamodb"), a phase ("3")
    hold_s: float = 0.0  # how long the fault lasts
    gap_s: float = 0.0  # wait before it
    params: dict[str, float] = field(default_factory=dict)

    @property
    def is_fault(self) -> bool:
        return self.kind in FAULT_WEIGHTS

    def describe(self) -> str:
        if not self.is_fault:
            return f"{self.kind} {self.target}".strip()
        extra = "".join(f" {k}={v:g}" for k, v in self.params.items())
        target = f" {self.target}" if self.target else ""
        return f"{self.kind}{target} hold={self.hold_s:.1f}s{extra}"


def _fault(rng: random.Random, kinds: tuple[str, ...], processes: tuple[str, ...] = PROCESSES) -> Action:
    kind = rng.choices(kinds, weights=[FAULT_WEIGHTS[k] for k in kinds])[0]
    gap = rng.uniform(0.5, 3.0)
    if kind == "kill9":
        return Action(kind, rng.choice(processes), rng.uniform(0.2, 3.0), gap)
    if kind == "pause":
        return Action(kind, rng.choice(processes), rng.uniform(*PAUSE_S), gap)
    if kind.startswith("restart_"):
        return Action(kind, kind.removeprefix("restart_"), 0.0, gap)
    if kind.startswith("dynamodb_"):
        share = round(rng.uniform(0.3, 0.95), 2)
        return Action(kind, "dynamodb", rng.uniform(3.0, 8.0), gap, {"share": share})
    proc = rng.choice(processes)
    link = f"{proc}.{rng.choice(LINKS[proc])}"
    if kind == "net_latency":
        return Action(kind, link, rng.uniform(3.0, 8.0), gap,
                      {"latency_ms": rng.randint(50, 800), "jitter_ms": rng.randint(0, 200)})
    return Action(kind, link, rng.uniform(2.0, 8.0), gap)


def _operator(rng: random.Random) -> list[Action]:
    acts = [Action("phase", "", 0.0, rng.uniform(0.5, 2.0)) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.5:
        acts.append(Action("ddl", "items", 0.0, rng.uniform(0.5, 2.0)))
    acts += [Action("blob", "blobs", 0.0, rng.uniform(0.2, 1.0)) for _ in range(rng.randint(1, 3))]
    acts += [Action("blob_small", "blobs", 0.0, rng.uniform(0.2, 1.0)) for _ in range(rng.randint(1, 4))]
    return acts


def _phase5(rng: random.Random) -> list[Action]:
    """The second stream's actions: one fault of the reverse replication, and the switches."""
    acts = [_fault(rng, REVERSE_FAULTS, (REVERSE,))]
    if rng.random() < SWITCH_SHARE:
        acts.append(Action("switch", "5", 0.0, rng.uniform(0.5, 2.0)))
        if rng.random() < SWITCH_BACK_SHARE:
            acts.append(Action("switch", "4", 0.0, rng.uniform(0.5, 2.0)))
    return acts


def draw(seed: int, faults: tuple[int, int] = (3, 6), *, restarts: bool = True,
         phase5: bool = True) -> list[Action]:
    """The schedule of one run: faults and operator actions, interleaved at random. Without
    ``restarts`` (a stack whose servers the campaign cannot restart) no server is restarted;
    without ``phase5``, the schedule as it was before phase 5 joined (no switch, no fault of the
    reverse replication). The phase-5 actions keep their order: a switch back follows its switch."""
    rng = random.Random(seed)
    kinds = tuple(k for k in FAULT_KINDS if restarts or not k.startswith("restart_"))
    acts = [_fault(rng, kinds) for _ in range(rng.randint(*faults))] + _operator(rng)
    rng.shuffle(acts)
    if not phase5:
        return acts
    second = random.Random(f"{seed}:phase5")
    extra = _phase5(second)
    spots = sorted(second.randint(0, len(acts)) for _ in extra)
    for offset, (spot, act) in enumerate(zip(spots, extra, strict=True)):
        acts.insert(spot + offset, act)
    return acts


def next_phase(rng: random.Random, current: int, switch_rng: random.Random | None = None) -> int:
    """Forward one step, or back to any lower phase. Phase 5 only with ``switch_rng`` (which alone
    decides it, so that ``rng`` draws what it drew before phase 5 joined): from 4 a switch to 5
    (``PHASE5_FROM_4`` of the time), from 5 the switch back to 4 (lower needs acknowledgements)."""
    if current >= 5:
        return 4
    if current == 4 and switch_rng is not None and switch_rng.random() < PHASE5_FROM_4:
        return 5
    if current <= 1:
        return 2
    if current >= 4 or rng.random() < 0.4:
        return rng.randint(1, current - 1)
    return current + 1
