"""A newcomer's first mistakes, answered: every sub-command of ``replicator --help`` started
against the real stack with one thing wrong (an unreachable server, a refused password, missing
grants, no AWS credentials, a mapped table that does not exist ...) stops with one message that
names the system's option, the documented exit code, no Python traceback and no secret.

Each case breaks one system; each command is tried with the cases of the systems it uses
(``phase`` and ``status`` only use the control store; ``check`` reports and exits 1). The
subprocesses run a few at a time: most stop within a second, Kafka's within its
``kafka.connect_timeout_s`` (set to 2 s here).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import admin_connect

pytestmark = pytest.mark.integration

# Distinctive values that no message may echo (fakes, not credentials of anything).
AWS_SECRET = "t15b-aws-secret-never-shown"  # noqa: S105
MYSQL_SECRET = "t15b-mysql-secret-never-shown"  # noqa: S105
REDIS_SECRET = "t15b-redis-secret-never-shown"  # noqa: S105
SECRETS = (AWS_SECRET, MYSQL_SECRET, REDIS_SECRET)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Case:
    name: str
    system: str  # mysql | kafka | dynamodb | control | tables | grants
    option: str  # what the message must name
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    config: str = "good"  # which config file: good | missing


# Which systems each sub-command uses, and its arguments (none of them may start real work when
# the case is right: every case breaks something the command needs before it starts).
COMMANDS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "run": (("run",), frozenset({"mysql", "kafka", "control", "tables", "grants", "replication"})),
    "write": (("write",), frozenset({"mysql", "kafka", "dynamodb", "control", "tables", "grants"})),
    "reverse": (("reverse",), frozenset({"mysql", "dynamodb", "control", "tables", "grants"})),
    "validate": (("validate",), frozenset({"mysql", "kafka", "dynamodb", "control", "tables", "grants"})),
    "backfill": (("backfill", "--no-wait"), frozenset({"mysql", "kafka", "control", "tables", "grants"})),
    "reconcile": (("reconcile",), frozenset({"mysql", "dynamodb", "control", "tables", "grants"})),
    "compact": (("compact",), frozenset({"dynamodb"})),
    "phase status": (("phase", "status"), frozenset({"control"})),
    "phase set": (("phase", "set", "2", "--reason", "startup test"), frozenset({"control"})),
    "phase rollback": (("phase", "rollback", "1", "--reason", "startup test"), frozenset({"control"})),
    "phase history": (("phase", "history"), frozenset({"control"})),
    "phase repair": (("phase", "repair", "--reason", "startup test"), frozenset({"control"})),
    "phase check": (("phase", "check", "2"), frozenset({"control"})),
    "status": (("status", "--once"), frozenset({"control"})),
    "demo": (("demo", "--rows", "10"), frozenset({"mysql", "kafka", "dynamodb", "control"})),
    "check": (("check", "--json"), frozenset({"mysql", "kafka", "dynamodb", "control"})),
}
EXIT = {"check": 1}  # a probe reports: exit 1 when a service fails (DESIGN §7); every other: 2


def _cases(port: int) -> list[Case]:
    return [
        Case("mysql unreachable", "mysql", "mysql.port", {"REPLICATOR_MYSQL__PORT": str(port)}),
        Case("mysql unknown host", "mysql", "mysql.host",
             {"REPLICATOR_MYSQL__HOST": "no-such-host.invalid", "REPLICATOR_MYSQL__CONNECT_TIMEOUT_S": "3"}),
        Case("mysql wrong password", "mysql", "mysql.password", {"REPLICATOR_MYSQL__PASSWORD": MYSQL_SECRET}),
        Case("mysql user without grants", "grants", "mysql.user", {"REPLICATOR_MYSQL__USER": "{nogrant}"}),
        Case("mysql user without replication grants", "replication", "mysql.user",
             {"REPLICATOR_MYSQL__USER": "{selectonly}"}),
        Case("mapped table missing", "tables", "tables[].source", config="missing"),
        Case("kafka unreachable", "kafka", "kafka.bootstrap_servers",
             {"REPLICATOR_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}),
        Case("kafka TLS against a plaintext broker", "kafka", "kafka.extra",
             {"REPLICATOR_KAFKA__EXTRA": '{"security.protocol": "SSL"}'}),
        Case("dynamodb unreachable", "dynamodb", "dynamodb.endpoint_url",
             {"REPLICATOR_DYNAMODB__ENDPOINT_URL": f"http://127.0.0.1:{port}"}),
        Case("no AWS credentials", "dynamodb", "AWS_ACCESS_KEY_ID",
             {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
              "AWS_EC2_METADATA_DISABLED": "true"}, unset=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
        Case("redis unreachable", "control", "control.redis_url",
             {"REPLICATOR_CONTROL__REDIS_URL": f"redis://127.0.0.1:{port}/0"}),
        Case("redis password refused", "control", "control.redis_url",
             {"REPLICATOR_CONTROL__REDIS_URL": "redis://:" + REDIS_SECRET + "@{redis_hostport}/0"}),
    ]


@dataclass
class Stack:
    env: dict[str, str]
    configs: dict[str, Path]
    users: dict[str, str]
    redis_hostport: str


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tag = "su" + str(int(time.time() * 1000) % 10**9)
    conn = admin_connect(stack_env)
    users = {"nogrant": f"{tag}_none", "selectonly": f"{tag}_sel"}
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{tag}`")
        cur.execute(f"CREATE TABLE `{tag}`.users (id INT PRIMARY KEY, name VARCHAR(20))")
        password = stack_env["REPLICATOR_MYSQL__PASSWORD"]
        for user in users.values():
            cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT SELECT ON `{tag}`.* TO '{users['selectonly']}'@'%'")
    tmp = tmp_path_factory.mktemp("startup")
    configs = {"good": tmp / "good.yaml", "missing": tmp / "missing.yaml"}
    configs["good"].write_text(f"tables: [{{source: {tag}.users}}]\n")
    configs["missing"].write_text(f"tables: [{{source: {tag}.users}}, {{source: {tag}.nope}}]\n")
    env = {k: v for k, v in stack_env.items()}
    env.update({
        "PATH": "/usr/bin:/bin", "REPLICATOR_KAFKA__TOPIC_PREFIX": tag, "REPLICATOR_CONTROL__NAMESPACE": tag,
        "REPLICATOR_DYNAMODB__TABLE_PREFIX": f"{tag}-", "REPLICATOR_KAFKA__CONNECT_TIMEOUT_S": "2",
        "REPLICATOR_MYSQL__CONNECT_TIMEOUT_S": "3", "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
        "REPLICATOR_CUTOVER__FENCE_TABLE": f"{tag}.fence", "STACK_MYSQL_ADMIN_USER": "",
    })
    url = stack_env["REPLICATOR_CONTROL__REDIS_URL"]
    hostport = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    try:
        yield Stack(env, configs, users, hostport)
    finally:
        _drop_topics(stack_env["REPLICATOR_KAFKA__BOOTSTRAP_SERVERS"], tag)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{tag}`")
            for user in users.values():
                cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        conn.close()


def _drop_topics(servers: str, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": servers})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
    for fut in (admin.delete_topics(topics, operation_timeout=30) if topics else {}).values():
        fut.result()


def _run(stack: Stack, case: Case, command: str) -> tuple[Case, str, subprocess.CompletedProcess[str]]:
    args, _ = COMMANDS[command]
    env = {k: v for k, v in stack.env.items() if k not in case.unset}
    for k, v in case.env.items():
        for name, value in {**stack.users, "redis_hostport": stack.redis_hostport}.items():
            v = v.replace("{" + name + "}", value)
        env[k] = v
    if command == "demo":
        env["STACK_MYSQL_ADMIN_USER"] = "nobody-needed-before-the-checks"
    res = subprocess.run([sys.executable, "-m", "replicator.cli", *args, "--config",
                          str(stack.configs[case.config])],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    return case, command, res


def _pairs(cases: list[Case]) -> list[tuple[Case, str]]:
    return [(case, command) for case in cases for command, (_, uses) in COMMANDS.items()
            if case.system in uses]


def test_every_subcommand_answers_each_startup_failure_with_exit_code_option_and_no_traceback(
    stack: Stack,
) -> None:
    cases = _cases(_closed_port())
    pairs = _pairs(cases)
    assert {command for _, command in pairs} == set(COMMANDS), "a sub-command is tried with no case"
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda p: _run(stack, *p), pairs))
    wrong: list[str] = []
    for case, command, res in results:
        out = res.stdout + res.stderr
        expected = EXIT.get(command, 2)
        problems = []
        if res.returncode != expected:
            problems.append(f"exit {res.returncode}, expected {expected}")
        if "Traceback" in out:
            problems.append("a traceback")
        if case.option not in out:
            problems.append(f"no mention of {case.option}")
        problems += [f"the secret {s}" for s in SECRETS if s in out]
        if problems:
            wrong.append(f"{command} / {case.name}: {', '.join(problems)}\n    {out.strip()[-600:]}")
    assert not wrong, f"{len(wrong)} of {len(results)} start-ups answered wrongly:\n" + "\n".join(wrong)


def test_the_reader_waits_for_a_missing_table_with_wait_for_tables_and_streams_it_once_created(
    stack: Stack, stack_env: dict[str, str],
) -> None:
    from confluent_kafka import Consumer

    from replicator.events import ChangeEvent

    tag = stack.env["REPLICATOR_KAFKA__TOPIC_PREFIX"]
    proc = subprocess.Popen([sys.executable, "-m", "replicator.cli", "run", "--wait-for-tables", "--config",
                             str(stack.configs["missing"])], env=stack.env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    stderr = proc.stderr
    assert stderr is not None
    drain = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")), daemon=True)
    drain.start()
    conn = admin_connect(stack_env)
    consumer = Consumer({"bootstrap.servers": stack_env["REPLICATOR_KAFKA__BOOTSTRAP_SERVERS"],
                         "group.id": f"{tag}.check", "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    try:
        deadline = time.monotonic() + 90
        while not any("reader_started" in ln for ln in list(lines)):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)[-2000:]
            time.sleep(0.2)
        warned = [ln for ln in list(lines) if "mapped_table_missing" in ln]
        assert warned and "warning" in warned[0] and f"{tag}.nope" in warned[0], "".join(lines)[-2000:]
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE `{tag}`.nope (id INT PRIMARY KEY)")
            cur.execute(f"INSERT INTO `{tag}`.nope VALUES (7)")
        consumer.subscribe([f"{tag}.{tag}.nope"])
        event = None
        while event is None:
            assert time.monotonic() < deadline, "the created table's row never reached Kafka"
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                event = ChangeEvent.from_json(msg.value() or b"")
        assert (event.op, event.table, event.pk) == ("c", "nope", {"id": 7})
    finally:
        consumer.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{tag}`.nope")
        conn.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        drain.join(10)
        stderr.close()
    assert proc.returncode == 0, "".join(lines)[-2000:]
