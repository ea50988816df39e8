"""The exception tree: every exception this product raises on purpose, one class per decision.

    ReplicatorError                        root                                   exit
    ├── ConfigError                        bad usage or configuration -> stop       2
    │   ├── NotBuiltError                  a sub-command that is not built yet      2
    │   ├── TargetFatalError               DynamoDB refuses for good (access denied, 2
    │   │   │                              no credentials)
    │   │   └── TableNotFoundError         the DynamoDB table does not exist
    │   ├── GrantsMissingError             the MySQL user lacks a grant it needs       2
    │   ├── SourceTableMissingError        a mapped table is not in MySQL at start-up   2
    │   └── ClientUsageError               the application called the client wrongly 2
    │       ├── UnknownTableError          a table the mapping does not carry
    │       ├── KeyShapeError              a key with missing or extra columns
    │       ├── UnknownAccessPatternError  a query on an undeclared access pattern
    │       └── TransactionTooLargeError   over DynamoDB's 100-item transaction limit
    ├── FatalDataError                     the data cannot be carried safely -> stop 3
    │   ├── BinlogPurgedError              the checkpoint position is gone
    │   ├── SourceConfigError              binlog not ROW/FULL, grants, no PK, cascades
    │   ├── UnmappableSchemaError          a schema the reader cannot decode or map
    │   ├── CorruptCheckpointError         the checkpoint record cannot be read
    │   └── TableVanishedError             a mapped table was dropped while copied
    ├── TransientError                     retry with backoff; nothing is lost       1
    │   ├── SourceUnavailable              MySQL down, network cut                   2
    │   ├── BrokerUnavailable              Kafka down or not acknowledging           2
    │   ├── TargetUnavailable              DynamoDB throttling, 5xx, connection errors 2
    │   ├── ControlStoreUnavailable        Redis / control table unreachable         2
    │   ├── ProbeError                     a gate probe could not measure
    │   ├── WriteFrozenError               writes are paused by a cutover; retry
    │   │   └── FencedError                the store is fenced: writes moved on
    │   └── WriteConflictError             a phase-5 write raced another; retry it
    ├── MappingError                       one row/event cannot be mapped -> dead-letter 3
    │   ├── ItemTooLargeError              over DynamoDB's 400 KB item limit
    │   ├── MissingKeyError                a key attribute NULL or empty
    │   ├── UnmappableValueError           a value the column's mapping cannot carry
    │   └── BadEventError                  not JSON, unknown envelope, wrong shape
    ├── StatementRejected                  MySQL refuses a statement (constraint,    1
    │   └── DuplicateKeyError              data too long ...); nothing was written
    ├── TargetRejected                     DynamoDB refuses one request as invalid   3
    │   ├── ConditionFailed                a conditional write lost (a replay, a race)
    │   └── TransactionCancelled           a transaction cancelled, with per-item reasons
    └── PhaseError                         phase controller decisions                2
        ├── PhaseConflictError             another operator changed the phase first
        │   └── EpochConflict              compare-and-set on ``epoch`` lost
        ├── TransitionError                a transition the rules forbid
        │   └── Phase5RollbackRefused      leaving 5 would hide phase-5 writes
        ├── SwitchAborted                  a write-target switch overran and rolled back  1
        └── GateFailedError                a forward gate is not met                 1
            └── GatesNotMet                which gates, measured against what

The four ``*Unavailable`` classes are retried by the long-running processes once they run;
one that reaches the command line (a system that cannot be reached at start-up, or by a
one-shot command) is an unreachable endpoint or an outage: exit 2, its message naming the
option that points at the system (``mysql.host``, ``kafka.bootstrap_servers`` ...).

Vendor exceptions (PyMySQL, botocore, librdkafka, redis) are translated into this tree at
one boundary per vendor, the context managers of :mod:`replicator.adapters`
(``raise X(...) from exc``); nothing above the adapters catches a vendor exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL_DATA = 3


class ReplicatorError(Exception):
    """Root of every exception raised on purpose by this product."""

    exit_code: int = EXIT_USAGE


# --------------------------------------------------------------------------- configuration


class ConfigError(ReplicatorError):
    """Bad usage or configuration; the message names the option and what to do."""

    exit_code = EXIT_USAGE


class NotBuiltError(ConfigError):
    """A sub-command that exists in the operator surface but is not implemented yet."""


class TargetFatalError(ConfigError):
    """DynamoDB refuses for good (table gone, access denied, no credentials): stop, exit 2."""


class TableNotFoundError(TargetFatalError):
    """The DynamoDB table does not exist (create it, or ``replicator write --create-tables``)."""


class GrantsMissingError(ConfigError):
    """The MySQL user lacks a grant the process needs; the message names the GRANT to run."""


class SourceTableMissingError(ConfigError):
    """A mapped table (``tables[].source``) does not exist in MySQL when the process starts."""


class ClientUsageError(ConfigError):
    """The application called :mod:`replicator.client` wrongly; the message says how to fix it."""


class UnknownTableError(ClientUsageError):
    pass


class KeyShapeError(ClientUsageError):
    pass


class UnknownAccessPatternError(ClientUsageError):
    pass


class TransactionTooLargeError(ClientUsageError):
    pass


# --------------------------------------------------------------------------- fatal data


class FatalDataError(ReplicatorError):
    """The data cannot be carried safely; the process stops rather than skip anything."""

    exit_code = EXIT_FATAL_DATA


class BinlogPurgedError(FatalDataError):
    pass


class SourceConfigError(FatalDataError):
    pass


class UnmappableSchemaError(FatalDataError):
    pass


class CorruptCheckpointError(FatalDataError):
    """The checkpoint record cannot be read; resuming from a guess would lose or repeat data."""


class TableVanishedError(FatalDataError):
    """A mapped table disappeared (dropped or renamed) while it was being copied."""


# --------------------------------------------------------------------------- transient


class TransientError(ReplicatorError):
    """Worth retrying with backoff; the caller keeps everything it has not acknowledged."""

    exit_code = EXIT_CHECK_FAILED


class SourceUnavailable(TransientError):
    """MySQL cannot be reached or went away; exit 2 when it reaches the command line."""

    exit_code = EXIT_USAGE


class BrokerUnavailable(TransientError):
    """Kafka cannot be reached or does not acknowledge; exit 2 when it reaches the command line."""

    exit_code = EXIT_USAGE


class TargetUnavailable(TransientError):
    """DynamoDB throttled, failed (5xx) or could not be reached; ``code`` names DynamoDB's reason.
    Exit 2 when it reaches the command line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ControlStoreUnavailable(TransientError):
    """The control store cannot be reached (or answered with a server error).

    Worth retrying for a long-running process (a Redis restart); for the ``phase`` CLI it is
    bad configuration or an outage, exit 2, and nothing was written.
    """

    exit_code = EXIT_USAGE


class ProbeError(TransientError):
    """A gate probe could not measure (server unreachable); the gate fails with this message."""


class WriteFrozenError(TransientError):
    """Application writes are paused (a cutover is switching the write target); retry shortly."""


class FencedError(WriteFrozenError):
    """The store this client tried to write is fenced: a switch moved the writes to the other
    store, and this client's phase was stale. Nothing was written; the operation may be retried
    under the current phase."""


class WriteConflictError(TransientError):
    """A phase-5 write kept losing its version condition to concurrent writers; nothing was
    written by it; retry the operation."""


# --------------------------------------------------------------------------- one row


class MappingError(ReplicatorError):
    """One row or event cannot be mapped; it goes to the dead-letter topic and work goes on."""

    exit_code = EXIT_FATAL_DATA

    def __init__(self, message: str, *, table: str = "", key: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.table = table
        self.key = key
        self.reason = reason or message


class ItemTooLargeError(MappingError):
    pass


class MissingKeyError(MappingError):
    pass


class UnmappableValueError(MappingError):
    """A value that the column's mapping cannot carry (reason says which rule)."""


class BadEventError(MappingError):
    pass


class StatementRejected(ReplicatorError):
    """MySQL refused a statement (constraint, value out of range ...); ``code`` is MySQL's."""

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class DuplicateKeyError(StatementRejected):
    """An insert (or key update) hit an existing primary or unique key."""


class TargetRejected(ReplicatorError):
    """DynamoDB refused one request as invalid (``ValidationException``); ``code`` says why."""

    exit_code = EXIT_FATAL_DATA

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ConditionFailed(TargetRejected):
    """A conditional write was refused because its condition did not hold (a replay, a race)."""


class TransactionCancelled(TargetRejected):
    """``TransactWriteItems`` was cancelled; ``reasons`` holds one code per item (``"None"``: not
    the cause, ``"ConditionalCheckFailed"``, ``"ValidationError"``, throttling ...)."""

    def __init__(self, message: str, *, reasons: Sequence[str], messages: Sequence[str] = ()) -> None:
        super().__init__(message, code="TransactionCanceledException")
        self.reasons = list(reasons)
        self.messages = list(messages) or [""] * len(self.reasons)


# --------------------------------------------------------------------------- phases


class PhaseError(ReplicatorError):
    exit_code = EXIT_USAGE


class PhaseConflictError(PhaseError):
    pass


class EpochConflict(PhaseConflictError):
    """Compare-and-set lost: another change moved ``epoch`` first."""

    def __init__(self, expected: int, actual: int | None = None) -> None:
        seen = "" if actual is None else f" (the store is at epoch {actual})"
        super().__init__(
            f"another operator changed the migration phase first: expected epoch {expected}{seen}; "
            "nothing was written -- run `replicator phase status` and decide again"
        )
        self.expected = expected
        self.actual = actual


class TransitionError(PhaseError):
    pass


class Phase5RollbackRefused(TransitionError):
    """Leaving phase 5 would hide the writes made there: they exist only in DynamoDB."""


class SwitchAborted(PhaseError):
    """A switch of the write target (4 <-> 5) did not finish within its pause bound and was
    undone: the old store takes the writes again and nothing was lost. The message says why."""

    exit_code = EXIT_CHECK_FAILED


class GateFailedError(PhaseError):
    exit_code = EXIT_CHECK_FAILED


class GatesNotMet(GateFailedError):
    """A forward transition whose gates are not met; ``results`` are the gates' results."""

    def __init__(self, message: str, results: Sequence[Any]) -> None:
        super().__init__(message)
        self.results = list(results)
