"""scripts/stack.py: idempotent, stops only what it started, names a port taken by others.

Exercised with Redis alone in a private directory and port, so the shared stack is untouched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def private_stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ, STACK_DIR=str(tmp_path / "stack"), STACK_REDIS_PORT=str(free_port()))
    yield env
    subprocess.run([sys.executable, "scripts/stack.py", "down", "redis"], cwd=ROOT, env=env, check=False)


def stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "scripts/stack.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def redis_pids(stack_dir: str) -> list[int]:
    """Live redis-server processes whose working directory is this private stack."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"redis-server" in (proc / "cmdline").read_bytes() and \
                    os.readlink(proc / "cwd").startswith(stack_dir):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_up_twice_leaves_exactly_one_instance(private_stack: dict[str, str]) -> None:
    first = stack(private_stack, "up", "redis")
    assert first.returncode == 0, first.stderr
    second = stack(private_stack, "up", "redis")
    assert second.returncode == 0, second.stderr
    assert "reused" in second.stdout
    assert len(redis_pids(private_stack["STACK_DIR"])) == 1


def test_down_stops_what_it_started_and_status_reports_it(private_stack: dict[str, str]) -> None:
    assert stack(private_stack, "up", "redis").returncode == 0
    assert stack(private_stack, "down", "redis").returncode == 0
    assert redis_pids(private_stack["STACK_DIR"]) == []
    status = stack(private_stack, "status")
    assert status.returncode == 1 and "redis     down" in status.stdout


def test_a_port_taken_by_another_process_is_named(private_stack: dict[str, str]) -> None:
    port = int(private_stack["STACK_REDIS_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        res = stack(private_stack, "up", "redis")
    assert res.returncode == 1
    assert f"port {port}" in res.stderr and "already in use" in res.stderr
    assert redis_pids(private_stack["STACK_DIR"]) == []


def test_a_recycled_pid_in_the_pid_file_is_never_signalled(private_stack: dict[str, str]) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        run = Path(private_stack["STACK_DIR"]) / "run"
        run.mkdir(parents=True)
        # Our pid file names a live process that the stack did not start (wrong start time).
        (run / "redis.pid").write_text(f"{bystander.pid} 1")
        res = stack(private_stack, "down", "redis")
        assert res.returncode == 0 and "not running" in res.stdout
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
