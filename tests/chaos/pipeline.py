"""One run's processes: the real CLI roles and the chaos application, each behind its own links.

Every process gets a config file of its own whose MySQL, Redis and DynamoDB endpoints are its
toxiproxy links (``<process>.<server>``), so that a fault can cut or slow one process's link to
one server. Its environment carries the passwords and no other ``REPLICATOR_*`` variable (those
would override the file's endpoints). A process that exits by itself is counted and started
again, as an orchestrator would; a killed one is started again by the fault that killed it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from replicator.demo.processes import secrets_env, settings_yaml
from replicator.settings import Settings
from tests.chaos.proxies import DynamoFaultProxy, Toxiproxy

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ("mysql", "redis", "dynamodb")


@dataclass
class Proc:
    name: str
    args: list[str]  # after ``replicator`` (or the app's module)
    servers: tuple[str, ...]  # the links it has
    restart_args: list[str] | None = None  # arguments of later starts (the reader's --from goes)
    app: bool = False
    done_codes: tuple[int, ...] = ()  # exit codes that mean finished (the backfill's 0)
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    paused: bool = False
    finished: bool = False


@dataclass
class Processes:
    settings: Settings
    toxi: Toxiproxy
    dynamo: DynamoFaultProxy
    run_dir: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    exited: Counter[str] = field(default_factory=Counter)  # exits nobody asked for, by process
    why: dict[str, str] = field(default_factory=dict)  # process -> the last error line of its first exit

    def _config(self, proc: Proc) -> Path:
        doc = yaml.safe_load(settings_yaml(self.settings))
        ports = {s: self.toxi.link(f"{proc.name}.{s}", self._upstream(s)) for s in proc.servers}
        if "mysql" in ports:
            doc["mysql"]["port"] = ports["mysql"]
        if "redis" in ports:
            url = urlsplit(self.settings.control.redis_url)
            doc["control"]["redis_url"] = f"redis://127.0.0.1:{ports['redis']}{url.path}"
        if "dynamodb" in ports:
            doc["dynamodb"]["endpoint_url"] = f"http://127.0.0.1:{ports['dynamodb']}"
        path = self.run_dir / f"{proc.name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def _upstream(self, server: str) -> int:
        if server == "mysql":
            return self.settings.mysql.port
        if server == "redis":
            return int(urlsplit(self.settings.control.redis_url).port or 6379)
        return self.dynamo.port

    def add(self, proc: Proc) -> None:
        self.procs[proc.name] = proc
        self.start(proc.name)

    def start(self, name: str) -> None:
        proc = self.procs[name]
        config = self._config(proc)
        args = proc.args if proc.starts == 0 or proc.restart_args is None else proc.restart_args
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
        env.update(secrets_env(self.settings))
        if proc.app:
            cmd = [sys.executable, "-m", "tests.chaos.app", "--config", str(config),
                   "--incarnation", str(proc.starts), *args]
        else:
            cmd = [sys.executable, "-m", "replicator.cli", *args, "--config", str(config)]
        with (self.run_dir / f"{name}.log").open("ab") as out:
            out.write(f"---- start {proc.starts + 1} at {time.time():.3f}: {' '.join(args)}\n".encode())
            out.flush()
            proc.popen = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        proc.starts += 1
        proc.paused = False

    def alive(self, name: str) -> bool:
        p = self.procs[name].popen
        return p is not None and p.poll() is None

    def signal(self, name: str, sig: signal.Signals) -> bool:
        """Send ``sig`` if the process runs; False if it did not."""
        p = self.procs[name].popen
        if p is None or p.poll() is not None:
            return False
        p.send_signal(sig)
        if sig == signal.SIGKILL:
            p.wait(30)
        self.procs[name].paused = sig == signal.SIGSTOP
        return True

    def supervise(self) -> None:
        """Start again what exited by itself (counted); a finished one stays finished."""
        for name, proc in self.procs.items():
            p = proc.popen
            if p is None or p.poll() is None or proc.finished:
                continue
            if p.returncode in proc.done_codes:
                proc.finished = True
                continue
            self.exited[f"{name} (exit {p.returncode})"] += 1
            if name not in self.why:
                self.why[name] = self._last_error(name)
            self.start(name)

    def _last_error(self, name: str) -> str:
        """The last error line of a process's log: why it exited."""
        lines = (self.run_dir / f"{name}.log").read_text(errors="replace").splitlines()
        found = [x for x in lines if "error" in x.lower() and not x.startswith(" ")]
        return (found[-1] if found else (lines[-1] if lines else ""))[:400]

    def resume_all(self) -> None:
        for name, proc in self.procs.items():
            if proc.paused:
                self.signal(name, signal.SIGCONT)

    def stop(self, name: str, timeout_s: float = 30.0) -> int | None:
        p = self.procs[name].popen
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs[name].finished = True
        return p.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, timeout_s=20.0)
