"""The exception tree. Each class stands for one decision the caller makes.

    ReplicatorError                      root: anything this product raises on purpose
    ├── ConfigError                      bad usage or configuration -> stop, exit 2
    ├── FatalDataError                   the data cannot be carried safely -> stop, exit 3
    │   ├── BinlogPurgedError            the checkpoint position is gone from the server
    │   ├── SourceConfigError            binlog not ROW/FULL, missing grants, table without a PK
    │   └── UnmappableSchemaError        a schema the reader cannot decode or map
    ├── TransientError                   retry with backoff; nothing is lost meanwhile
    │   ├── SourceUnavailable            MySQL down, network cut
    │   ├── BrokerUnavailable            Kafka down or not acknowledging
    │   └── TargetUnavailable            DynamoDB throttling, 5xx, connection errors
    ├── MappingError                     one row/event cannot be mapped -> dead-letter, go on
    │   ├── ItemTooLargeError
    │   ├── MissingKeyError
    │   └── BadEventError                not JSON, unknown envelope version, wrong shape
    └── PhaseError                       phase controller decisions
        ├── PhaseConflictError           another operator changed the phase first (CAS lost)
        ├── TransitionError              a transition the rules forbid (skip, out of range)
        └── GateFailedError              a forward gate is not met -> exit 1

Vendor exceptions are translated at the adapter boundary (``raise X(...) from exc``).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL_DATA = 3


class ReplicatorError(Exception):
    """Root of every exception raised on purpose by this product."""

    exit_code: int = EXIT_USAGE


class ConfigError(ReplicatorError):
    """Bad usage or configuration; the message names the option and what to do."""

    exit_code = EXIT_USAGE


class NotBuiltError(ConfigError):
    """A sub-command that exists in the operator surface but is not implemented yet."""


class FatalDataError(ReplicatorError):
    """The data cannot be carried safely; the process stops rather than skip anything."""

    exit_code = EXIT_FATAL_DATA


class BinlogPurgedError(FatalDataError):
    pass


class SourceConfigError(FatalDataError):
    pass


class UnmappableSchemaError(FatalDataError):
    pass


class TransientError(ReplicatorError):
    """Worth retrying with backoff; the caller keeps everything it has not acknowledged."""

    exit_code = EXIT_CHECK_FAILED


class SourceUnavailable(TransientError):
    pass


class BrokerUnavailable(TransientError):
    pass


class TargetUnavailable(TransientError):
    pass


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


class BadEventError(MappingError):
    pass


class PhaseError(ReplicatorError):
    exit_code = EXIT_USAGE


class PhaseConflictError(PhaseError):
    pass


class TransitionError(PhaseError):
    pass


class GateFailedError(PhaseError):
    exit_code = EXIT_CHECK_FAILED
