#!/usr/bin/env python3
"""The local stack: MariaDB, Redis, Kafka (KRaft) and DynamoDB Local as plain processes.

No Docker engine runs on the development machines, so this script installs the four
servers from the registries the machine reaches (Debian packages for MariaDB and Redis,
Maven Central for Kafka and DynamoDB Local) and runs each one as an ordinary process
with a private data directory under ``.stack/`` and a non-default loopback port.

    python3 scripts/stack.py up        install what is missing, start what is not running
    python3 scripts/stack.py down      stop exactly the processes this stack started
    python3 scripts/stack.py status    one line per server; exit 1 if any is down
    python3 scripts/stack.py stop NAME / start NAME / restart NAME / kill NAME
                                       one server (tests use these for restarts)
    python3 scripts/stack.py fetch connect
                                       copy the artifacts of stack/NAME/pom.xml into the
                                       cache without starting anything (Kafka Connect and
                                       the Debezium connector for bench/bench_debezium.py)

Idempotent: ``up`` reuses a server whose pid file points at a live process of this
stack, and refuses (naming the port) when something else holds one of its ports.
Endpoints are written to ``.stack/env`` as ``KEY=value`` lines.

Only the standard library is used: this runs before the virtualenv exists.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = Path(os.environ.get("STACK_DIR", ROOT / ".stack")).resolve()
LOGS = STACK / "logs"
CACHE = STACK / "cache"

MYSQL_PORT = int(os.environ.get("STACK_MYSQL_PORT", "13306"))
REDIS_PORT = int(os.environ.get("STACK_REDIS_PORT", "16379"))
KAFKA_PORT = int(os.environ.get("STACK_KAFKA_PORT", "19092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("STACK_KAFKA_CONTROLLER_PORT", "19093"))
DYNAMODB_PORT = int(os.environ.get("STACK_DYNAMODB_PORT", "18000"))
JVM_HEAP = os.environ.get("STACK_JVM_HEAP", "512m")
MAVEN_REPO = os.environ.get("STACK_MAVEN_REPO", "")

REPL_USER, REPL_PASSWORD = "repl", "repl-pass"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-pass"

START_TIMEOUT_S = 120.0


class StackError(Exception):
    """A condition the operator must fix; the message says what and how."""


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# --------------------------------------------------------------------------- processes


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_time(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass
class Service:
    name: str
    ports: tuple[int, ...]
    prepare: Callable[[], None]
    command: Callable[[], list[str]]
    healthy: Callable[[], bool]
    after_start: Callable[[], None] = lambda: None

    @property
    def pidfile(self) -> Path:
        return STACK / "run" / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid this stack started, if that very process is still alive.

        The pid file holds the pid and the kernel start time of the process, so a pid the
        system has recycled for some other program is never taken for ours (and never signalled).
        """
        try:
            pid_s, started = self.pidfile.read_text().split()
            pid = int(pid_s)
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and start_time(pid) == started else None

    def start(self) -> str:
        pid = self.pid()
        if pid is not None:
            self.wait_healthy(pid)
            return f"{self.name}: already running (pid {pid}), reused"
        for port in self.ports:
            if port_open(port):
                raise StackError(
                    f"port {port} needed by {self.name} is already in use by another process; "
                    f"stop that process or choose another port (see the STACK_*_PORT variables in "
                    f"scripts/stack.py)"
                )
        self.prepare()
        LOGS.mkdir(parents=True, exist_ok=True)
        (STACK / "run").mkdir(parents=True, exist_ok=True)
        out = open(LOGS / f"{self.name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=STACK,
        )
        out.close()
        self.pidfile.write_text(f"{proc.pid} {start_time(proc.pid)}")
        t0 = time.monotonic()
        self.wait_healthy(proc.pid)
        self.after_start()
        return f"{self.name}: started (pid {proc.pid}) in {time.monotonic() - t0:.1f}s"

    def wait_healthy(self, pid: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise StackError(
                    f"{self.name} exited during start-up; see {LOGS / (self.name + '.log')}"
                )
            if self.healthy():
                return
            time.sleep(0.3)
        raise StackError(f"{self.name} did not become healthy in {START_TIMEOUT_S:.0f}s; "
                         f"see {LOGS / (self.name + '.log')}")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return f"{self.name}: not running"
        os.killpg(pid, sig) if _is_group_leader(pid) else os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.1)
        # The process is gone, but its group (a JVM's) may hold the port a little longer: a
        # restart right after must not find it taken.
        deadline = time.monotonic() + 30
        while any(port_open(p) for p in self.ports) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.pidfile.unlink(missing_ok=True)
        return f"{self.name}: stopped (pid {pid})"

    def status(self) -> tuple[bool, str]:
        pid = self.pid()
        if pid is None:
            return False, f"{self.name:9s} down"
        ok = self.healthy()
        ports = ",".join(str(p) for p in self.ports)
        return ok, f"{self.name:9s} {'up' if ok else 'UNHEALTHY'}  pid {pid}  port {ports}"


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


# --------------------------------------------------------------------------- installs


def apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise StackError(f"installing {' '.join(packages)} needs root (apt-get); install them and retry")
    log(f"installing Debian packages: {' '.join(packages)}")
    # Never let the packages' maintainer scripts start system-wide services on default ports.
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    finally:
        if created:
            policy.unlink(missing_ok=True)


def ensure_debian_servers() -> None:
    missing = []
    if not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()):
        missing += ["mariadb-server", "mariadb-client"]
    if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
        missing += ["redis-server"]
    if missing:
        apt_install(missing)


def ensure_maven_libs(name: str) -> Path:
    """Copy the artifacts of stack/NAME/pom.xml and their runtime dependencies into the cache."""
    libs = CACHE / name / "libs"
    pom = ROOT / "stack" / name / "pom.xml"
    stamp = libs / ".pom-sha"
    digest = _sha(pom.read_bytes())
    if stamp.exists() and stamp.read_text() == digest:
        return libs
    if not shutil.which("java"):
        raise StackError("a JDK is needed for Kafka and DynamoDB Local: install openjdk-17-jdk-headless")
    if not shutil.which("mvn"):
        apt_install(["maven"])
    log(f"fetching {name} artifacts from Maven Central")
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
         *([f"-Dmaven.repo.local={MAVEN_REPO}"] if MAVEN_REPO else []),
         f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        check=True, stdout=subprocess.DEVNULL,
    )
    stamp.write_text(digest)
    return libs


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- MariaDB

MYSQL_DIR = STACK / "mariadb"
# A unix socket path must fit in 108 bytes; fall back to /tmp when the checkout is deep.
MYSQL_SOCK = (
    MYSQL_DIR / "mysqld.sock"
    if len(str(MYSQL_DIR / "mysqld.sock")) < 100
    else Path(f"/tmp/stack-mysqld-{_sha(str(STACK).encode())[:12]}.sock")
)


def mysql_cnf() -> Path:
    return MYSQL_DIR / "my.cnf"


def mysql_prepare() -> None:
    (MYSQL_DIR / "binlog").mkdir(parents=True, exist_ok=True)
    mysql_cnf().write_text(f"""\
[mariadbd]
user = {"root" if os.geteuid() == 0 else os.environ.get("USER", "")}
datadir = {MYSQL_DIR / "data"}
socket = {MYSQL_SOCK}
pid-file = {MYSQL_DIR / "mariadbd.pid"}
port = {MYSQL_PORT}
bind-address = 127.0.0.1
skip-name-resolve
# the binlog as the replicator needs it
server_id = 1
log_bin = {MYSQL_DIR / "binlog" / "mysql-bin"}
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
gtid_domain_id = 0
gtid_strict_mode = ON
log_slave_updates = ON
max_binlog_size = 256M
expire_logs_days = 7
# modest footprint for a 2-core machine
innodb_buffer_pool_size = 256M
innodb_log_file_size = 128M
innodb_flush_log_at_trx_commit = 2
sync_binlog = 0
max_connections = 300
character_set_server = utf8mb4
collation_server = utf8mb4_unicode_ci
log_error = {LOGS / "mariadb.err"}
""")
    if not (MYSQL_DIR / "data" / "mysql").exists():
        log("initialising the MariaDB data directory")
        subprocess.run(
            ["mariadb-install-db", f"--defaults-file={mysql_cnf()}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )


def mysql_command() -> list[str]:
    return [shutil.which("mariadbd") or "/usr/sbin/mariadbd", f"--defaults-file={mysql_cnf()}"]


def mysql_client(sql: str, user: str = "root", password: str = "") -> subprocess.CompletedProcess[str]:
    args = ["mariadb", f"--socket={MYSQL_SOCK}", f"--user={user}", "--batch", "--skip-column-names"]
    if password:
        args.append(f"--password={password}")
    return subprocess.run([*args, "-e", sql], capture_output=True, text=True, timeout=20, check=False)


def mysql_healthy() -> bool:
    return MYSQL_SOCK.exists() and port_open(MYSQL_PORT) and (
        mysql_client("SELECT 1", ADMIN_USER, ADMIN_PASSWORD).returncode == 0
        or mysql_client("SELECT 1").returncode == 0
    )


def mysql_bootstrap() -> None:
    """Create the two users once; root keeps no network access."""
    if mysql_client("SELECT 1", ADMIN_USER, ADMIN_PASSWORD).returncode == 0:
        return
    sql = "".join(
        f"CREATE USER IF NOT EXISTS '{u}'@'{h}' IDENTIFIED BY '{p}'; {g.format(u=u, h=h)};"
        for u, p, g in (
            # exactly what the binlog reader needs: read the binlog, see positions, read schemas/rows
            (REPL_USER, REPL_PASSWORD,
             "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{u}'@'{h}'"),
            (ADMIN_USER, ADMIN_PASSWORD, "GRANT ALL PRIVILEGES ON *.* TO '{u}'@'{h}' WITH GRANT OPTION"),
        )
        for h in ("127.0.0.1", "localhost")
    )
    res = mysql_client(sql)
    if res.returncode != 0:
        raise StackError(f"creating the MariaDB users failed: {res.stderr.strip()}")


# --------------------------------------------------------------------------- Redis

REDIS_DIR = STACK / "redis"


def redis_prepare() -> None:
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    (REDIS_DIR / "redis.conf").write_text(f"""\
bind 127.0.0.1
port {REDIS_PORT}
dir {REDIS_DIR}
daemonize no
appendonly yes
appendfsync everysec
save ""
protected-mode yes
""")


def redis_command() -> list[str]:
    return [shutil.which("redis-server") or "/usr/bin/redis-server", str(REDIS_DIR / "redis.conf")]


def redis_healthy() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# --------------------------------------------------------------------------- Kafka

KAFKA_DIR = STACK / "kafka"


def kafka_prepare() -> None:
    libs = ensure_maven_libs("kafka")
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    props = KAFKA_DIR / "server.properties"
    props.write_text(f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT},CONTROLLER://127.0.0.1:{KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={KAFKA_DIR / "data"}
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.cleaner.enable=true
""")
    (KAFKA_DIR / "log4j2.yaml").write_text(f"""\
Configuration:
  Appenders:
    RollingFile:
      name: file
      fileName: {LOGS / "kafka-server.log"}
      filePattern: {LOGS / "kafka-server.log.%i"}
      PatternLayout: {{pattern: "[%d] %p %m (%c)%n"}}
      Policies: {{SizeBasedTriggeringPolicy: {{size: 20MB}}}}
      DefaultRolloverStrategy: {{max: 3}}
  Loggers:
    Root: {{level: INFO, AppenderRef: [{{ref: file}}]}}
""")
    if not (KAFKA_DIR / "data" / "meta.properties").exists():
        log("formatting the KRaft storage")
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            [*_java(libs, "256m"), "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(props), "--ignore-formatted"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )


def _java(libs: Path, heap: str) -> list[str]:
    return ["java", f"-Xmx{heap}", "-Xss1m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true", "-cp", f"{libs}/*"]


def kafka_command() -> list[str]:
    return [*_java(CACHE / "kafka" / "libs", JVM_HEAP)[:1], f"-Xms{JVM_HEAP}",
            *_java(CACHE / "kafka" / "libs", JVM_HEAP)[1:],
            f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={LOGS}", "kafka.Kafka", str(KAFKA_DIR / "server.properties")]


def kafka_healthy() -> bool:
    return port_open(KAFKA_PORT) and port_open(KAFKA_CONTROLLER_PORT)


def kafka_create_probe_topic() -> None:
    """Wait until the broker accepts a topic creation: the real readiness signal."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        res = subprocess.run(
            [*_java(CACHE / "kafka" / "libs", "128m"), "org.apache.kafka.tools.TopicCommand",
             "--bootstrap-server", f"127.0.0.1:{KAFKA_PORT}", "--create", "--if-not-exists",
             "--topic", "__stack_probe", "--partitions", "1", "--replication-factor", "1"],
            capture_output=True, text=True, check=False,
        )
        if res.returncode == 0:
            return
        last = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
        last = last[0]
        time.sleep(1)
    raise StackError(f"kafka never accepted a topic creation: {last}")


# --------------------------------------------------------------------------- DynamoDB Local

DYNAMODB_DIR = STACK / "dynamodb"


def dynamodb_prepare() -> None:
    ensure_maven_libs("dynamodb")
    (DYNAMODB_DIR / "data").mkdir(parents=True, exist_ok=True)


def dynamodb_command() -> list[str]:
    libs = CACHE / "dynamodb" / "libs"
    return [*_java(libs, JVM_HEAP), f"-Djava.library.path={libs}",
            "com.amazonaws.services.dynamodbv2.local.main.ServerRunner",
            # In memory: DynamoDB Local keeps every stream record and TTL entry in SQLite tables it
            # never trims, and each write then costs more (measured 2.3 ms -> 68 ms per put after a
            # few hours of tests); a test stack needs no data across restarts.
            "-port", str(DYNAMODB_PORT), "-inMemory", "-sharedDb"]


def dynamodb_healthy() -> bool:
    req = urllib.request.Request(
        f"http://127.0.0.1:{DYNAMODB_PORT}/", data=b"{}", method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            # DynamoDB Local checks the header's shape, not the signature.
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, "
                             "SignedHeaders=host, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 - fixed loopback URL
            return "TableNames" in json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False


# --------------------------------------------------------------------------- the stack

SERVICES = {
    s.name: s
    for s in (
        Service("mariadb", (MYSQL_PORT,), mysql_prepare, mysql_command, mysql_healthy, mysql_bootstrap),
        Service("redis", (REDIS_PORT,), redis_prepare, redis_command, redis_healthy),
        Service("kafka", (KAFKA_PORT, KAFKA_CONTROLLER_PORT), kafka_prepare, kafka_command, kafka_healthy,
                kafka_create_probe_topic),
        Service("dynamodb", (DYNAMODB_PORT,), dynamodb_prepare, dynamodb_command, dynamodb_healthy),
    )
}


def write_env() -> Path:
    env = {
        "REPLICATOR_MYSQL__HOST": "127.0.0.1",
        "REPLICATOR_MYSQL__PORT": str(MYSQL_PORT),
        "REPLICATOR_MYSQL__USER": REPL_USER,
        "REPLICATOR_MYSQL__PASSWORD": REPL_PASSWORD,
        "REPLICATOR_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT}",
        "REPLICATOR_DYNAMODB__ENDPOINT_URL": f"http://127.0.0.1:{DYNAMODB_PORT}",
        "REPLICATOR_DYNAMODB__REGION": "us-east-1",
        "REPLICATOR_CONTROL__REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "STACK_MYSQL_ADMIN_USER": ADMIN_USER,
        "STACK_MYSQL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # DynamoDB Local accepts any credentials; boto3 only needs some to sign with.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "STACK_KIND": "processes",
    }
    path = STACK / "env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def up(names: list[str]) -> None:
    t0 = time.monotonic()
    STACK.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    ensure_debian_servers()
    for name in names:
        log(SERVICES[name].start())
    log(f"endpoints written to {write_env()}")
    log(f"stack up in {time.monotonic() - t0:.1f}s")


def down(names: list[str]) -> None:
    for name in reversed(names):
        log(SERVICES[name].stop())


def status() -> int:
    ok_all = True
    for svc in SERVICES.values():
        ok, line = svc.status()
        ok_all &= ok
        print(line)
    return 0 if ok_all else 1


def fetch(names: list[str]) -> int:
    """Artifacts only (``fetch connect``): what a benchmark runs, not a server of the stack."""
    known = sorted(p.parent.name for p in (ROOT / "stack").glob("*/pom.xml"))
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        print(f"fetch what? known: {', '.join(known)}", file=sys.stderr)
        return 2
    try:
        for name in names:
            log(f"{name} artifacts in {ensure_maven_libs(name)}")
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"[stack] error: fetching {' '.join(names)} from Maven Central failed with exit "
              f"{exc.returncode}; run `mvn -f stack/NAME/pom.xml dependency:resolve` to see why",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    cmd, *rest = argv or ["status"]
    if cmd == "fetch":
        return fetch(rest)
    names = rest or list(SERVICES)
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        print(f"unknown server {unknown[0]!r}; known: {', '.join(SERVICES)}", file=sys.stderr)
        return 2
    try:
        if cmd in ("up", "start"):
            up(names)
        elif cmd in ("down", "stop"):
            down(names)
        elif cmd == "kill":
            for n in names:
                log(SERVICES[n].stop(signal.SIGKILL))
        elif cmd == "restart":
            down(names)
            up(names)
        elif cmd == "status":
            return status()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        cmd = " ".join(map(str, exc.cmd))
        print(f"[stack] error: {cmd} failed with exit {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
