"""A Kafka Connect standalone worker with one connector, as a child process of a benchmark.

The artifacts are those of ``stack/connect/pom.xml`` (Kafka Connect + the Debezium MariaDB
connector), which ``python3 scripts/stack.py fetch connect`` copies into
``.stack/cache/connect/libs``; :func:`connect_libs` runs that fetch when they are missing.
The worker's log lines start with the epoch milliseconds at which they were written, so
that the benchmark can time the connector's own steps (:meth:`ConnectWorker.logged_at`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.deadline import forget_child, register_child

ROOT = Path(__file__).resolve().parent.parent
HEAP = os.environ.get("BENCH_CONNECT_HEAP", "1g")  # the issue caps JVM heaps at 1 GiB

_LOG4J2 = """\
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{UNIX_MILLIS}} %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""
_ERRORS = re.compile(r"Task threw an uncaught and unrecoverable exception|Failed to start connector|"
                     r"Stopping due to error|Connector .* failed")


class ConnectError(Exception):
    """The worker or its connector failed; the message says where its log is."""


def connect_libs() -> Path:
    """The worker's class path directory, fetched from Maven Central by the stack script if missing."""
    stack = Path(os.environ.get("STACK_DIR", ROOT / ".stack"))
    libs = stack / "cache" / "connect" / "libs"
    if not (libs / ".pom-sha").exists():
        print("fetching Kafka Connect and the Debezium connector (python3 scripts/stack.py fetch connect)",
              flush=True)
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "stack.py"), "fetch", "connect"],
                             check=False, timeout=900)
        if res.returncode != 0:
            raise ConnectError("fetching Kafka Connect failed (see above); "
                               "retry with `python3 scripts/stack.py fetch connect`")
    return libs


def _properties(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


class ConnectWorker:
    """``ConnectStandalone worker.properties connector.properties`` under ``workdir``."""

    def __init__(self, workdir: Path, worker: dict[str, str], connector: dict[str, str]) -> None:
        self.workdir = workdir
        self.worker = worker
        self.connector = connector
        self.log = workdir / "connect.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0

    def start(self) -> None:
        libs = connect_libs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log.unlink(missing_ok=True)
        (self.workdir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log))
        (self.workdir / "worker.properties").write_text(_properties(self.worker))
        (self.workdir / "connector.properties").write_text(_properties(self.connector))
        cmd = ["java", f"-Xmx{HEAP}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}", "-cp", f"{libs}/*",
               "org.apache.kafka.connect.cli.ConnectStandalone",
               str(self.workdir / "worker.properties"), str(self.workdir / "connector.properties")]
        out = (self.workdir / "connect.out").open("ab")
        self.launched_at = time.time()
        self.proc = register_child(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                    start_new_session=True))
        out.close()

    def check(self) -> None:
        """Raise :class:`ConnectError` if the worker exited or its connector failed."""
        if self.proc is None:
            raise ConnectError("the Connect worker was not started")
        if self.proc.poll() is not None:
            raise ConnectError(f"the Connect worker exited with {self.proc.returncode}; see "
                               f"{self.workdir / 'connect.out'} and {self.log}")
        if self.log.exists():
            with self.log.open(errors="replace") as f:
                for line in f:
                    if _ERRORS.search(line):
                        raise ConnectError(f"the connector failed: {line.strip()[:300]} (see {self.log})")

    def logged_at(self, pattern: str) -> float | None:
        """Epoch seconds of the first log line matching ``pattern``, if any."""
        if not self.log.exists():
            return None
        rx = re.compile(pattern)
        with self.log.open(errors="replace") as f:
            for line in f:
                if rx.search(line):
                    stamp = line.split(" ", 1)[0]
                    return int(stamp) / 1000 if stamp.isdigit() else None
        return None

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the JVM so far (0 once it has exited)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (the worker commits its offsets on the way out), then SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                print(f"the Connect worker did not stop within {timeout_s:.0f} s of SIGTERM; killed")
                self.proc.kill()
                self.proc.wait(10)
        forget_child(self.proc)
        self.proc = None
