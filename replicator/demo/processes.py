"""The demo's pipeline processes: the real ``replicator run`` and ``replicator write``.

Each runs as a child process of this interpreter with the demo's settings written to a YAML
file (without the MySQL password, which travels in the environment) and its output in its
own log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import structlog
import yaml

from replicator.errors import SourceUnavailable
from replicator.settings import Settings

log = structlog.get_logger("replicator.demo.processes")


# Secrets never go into the config file: each travels to the processes in its environment variable.
_SECRETS = (("mysql", "password"), ("client", "mysql_password"), ("cutover", "mysql_password"))


def settings_yaml(settings: Settings) -> str:
    """The settings as a config file, without the passwords."""
    doc = settings.model_dump(mode="json")
    for section, key in _SECRETS:
        doc[section].pop(key, None)
    return yaml.safe_dump(doc, sort_keys=False)


def secrets_env(settings: Settings) -> dict[str, str]:
    """The passwords :func:`settings_yaml` leaves out, as ``REPLICATOR_*`` variables."""
    env: dict[str, str] = {}
    for section, key in _SECRETS:
        secret = getattr(getattr(settings, section), key)
        if secret is not None:
            env[f"REPLICATOR_{section.upper()}__{key.upper()}"] = secret.get_secret_value()
    return env


class Pipeline:
    """Starts CLI sub-commands with one config, watches them, and stops them all."""

    def __init__(self, settings: Settings, run_id: str, log_dir: Path) -> None:
        self.settings, self.run_id, self.log_dir = settings, run_id, log_dir
        self.config = log_dir / f"{run_id}.yaml"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def logs(self) -> str:
        return f"{self.log_dir}/{self.run_id}-*.log"

    def write_config(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(settings_yaml(self.settings))

    def spawn(self, name: str, *args: str) -> None:
        env = {**os.environ, **secrets_env(self.settings)}
        with (self.log_dir / f"{self.run_id}-{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [sys.executable, "-m", "replicator.cli", *args, "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        log.debug("demo_process_started", process=name, pid=self.procs[name].pid)

    def check_alive(self) -> None:
        """Raise if a process has exited: the demo cannot go on without it."""
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise SourceUnavailable(
                    f"a pipeline process exited (the {name}, code {p.returncode}); see {self.logs}"
                )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM each, wait for a clean exit, and kill what does not stop in time."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("demo_process_killed", process=name, pid=p.pid, timeout_s=timeout_s)
                p.kill()
                p.wait()
