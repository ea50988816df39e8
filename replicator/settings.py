"""Configuration: one frozen settings object per process, from a YAML file plus environment.

Precedence, highest first: ``REPLICATOR_*`` environment variables (nested with ``__``,
e.g. ``REPLICATOR_MYSQL__HOST``), then the YAML file given with ``--config``, then the
defaults below, which work against the local stack's conventional ports.

Built once at the entry point (:func:`load_settings`) and passed down; nothing below the
CLI reads the environment. A bad value raises :class:`ConfigError` naming the option.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from replicator.errors import ConfigError

ENV_PREFIX = "REPLICATOR_"


def _name_problem(name: str) -> str:
    """Why ``name`` cannot be a MySQL database or table name written in ``db.table`` ("" if it can).

    MySQL accepts in a quoted identifier every character of Unicode's Basic Multilingual Plane
    but U+0000, up to 64 characters, not ending with a space; the product quotes every name it
    sends (backticks doubled). A dot cannot be told from the separator here.
    """
    if not name:
        return "an empty name"
    if len(name) > 64:
        return f"{name!r} is longer than MySQL's 64 characters"
    if "." in name:
        return f"{name!r} holds a dot, which 'database.table' cannot tell from the separator"
    if name.endswith(" "):
        return f"{name!r} ends with a space, which MySQL refuses"
    bad = [c for c in name if c == "\0" or ord(c) > 0xFFFF]
    if bad:
        return f"{name!r} holds {bad[0]!r}, which MySQL identifiers cannot hold (U+0000, beyond U+FFFF)"
    return ""


_DYNAMODB_NAME = re.compile(r"[A-Za-z0-9_.-]+")
KAFKA_NAME = re.compile(r"[A-Za-z0-9_-]+")  # a topic name part ('.' separates prefix, database, table)


def legal_name(name: str, allowed: re.Pattern[str]) -> str:
    """``name`` unchanged when ``allowed`` matches it whole; else its allowed characters (every
    other one as ``_``) and a hash of the whole name, so that two names never meet:
    ``café orders`` -> ``caf__orders-1a2b3c4d``."""
    if allowed.fullmatch(name):
        return name
    kept = "".join(c if allowed.fullmatch(c) else "_" for c in name)[:48]
    return f"{kept}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def dynamodb_safe_name(name: str) -> str:
    """A MySQL table name as a DynamoDB table name (``[A-Za-z0-9_.-]``), see :func:`legal_name`."""
    return legal_name(name, _DYNAMODB_NAME)


def _db_dot_table(v: str) -> str:
    db, sep, table = v.partition(".")
    if not sep:
        raise ValueError(f"must be 'database.table', got {v!r}")
    problem = _name_problem(db) or _name_problem(table)
    if problem:
        raise ValueError(f"must be 'database.table' as MySQL names them, got {v!r}: {problem}")
    return v


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MySQLSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    user: str = "repl"
    password: SecretStr = SecretStr("")
    server_id: int = Field(4242, ge=1, le=2**32 - 1, description="replica server_id the reader presents")
    connect_timeout_s: float = Field(10.0, gt=0)


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = Field("cdc", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(3, ge=1, description="partitions of each table topic created by the product")
    replication_factor: int = Field(1, ge=1)
    transactional_id: str | None = Field(None, description="default: <topic_prefix>.reader")
    extra: dict[str, str] = Field(default_factory=dict, description="raw librdkafka settings (e.g. SASL)")
    connect_timeout_s: float = Field(10.0, gt=0, description="how long a process waits at start-up for "
                                                             "the brokers to answer before it stops")


class DynamoDBSettings(_Section):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    table_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$")
    tombstone_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="how long delete tombstones are kept")
    max_concurrency: int = Field(8, ge=1, le=64)
    streams: bool = Field(
        True, description="`replicator write --create-tables` gives each table a NEW_AND_OLD_IMAGES stream, "
                          "which reverse replication (the way back from phase 5) reads; off only where "
                          "phase 5 is never reached (a test stack: streams slow DynamoDB Local down)")


class ControlSettings(_Section):
    backend: Literal["redis", "dynamodb"] = "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str | None = Field(None, description="Redis key/channel prefix; default: kafka.topic_prefix")
    table: str = Field("migration-control", description="DynamoDB control table (table_prefix prepended)")


class KeySpec(_Section):
    pk: str | None = Field(None, description='partition-key template, e.g. "USER#{id}"')
    sk: str | None = Field(None, description='sort-key template, e.g. "PROFILE"')


ColumnType = Literal["default", "epoch_ms", "bool", "string", "number"]


class IndexSpec(_Section):
    """A secondary access pattern (DESIGN §3.5): a GSI in DynamoDB, a WHERE clause in MySQL."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$",
                      description="the access pattern's name, used as the GSI name as is")
    pk: str = Field(min_length=1, description="column whose value the pattern is queried by")
    sk: str | None = Field(None, min_length=1, description="column the pattern's rows are ordered by")

    @model_validator(mode="after")
    def _two_columns(self) -> IndexSpec:
        if self.sk == self.pk:
            raise ValueError(f"index {self.name!r}: pk and sk are both {self.pk!r}; drop sk or pick "
                             f"another column")
        return self


class EmbedSpec(_Section):
    """Where an embedded child table's rows live (docs/model.md): entries of a map attribute of
    their parent's item, keyed by the child's primary key."""

    parent: str = Field(description="database.table of the parent mapping (mapped, not itself embedded)")
    as_: str = Field(alias="as", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                     description="the parent item's map attribute that holds the children")
    on: dict[str, str] = Field(min_length=1, description="child column -> parent column; must give every "
                                                           "column of the parent's key")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads an unquoted `on:` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = dict(data)
            data["on"] = data.pop(True)
        return data


class CollectionSpec(_Section):
    """A declared item-collection query (docs/model.md): this table's row and the member tables'
    rows that share its partition key, in one Query on DynamoDB and one SELECT per table on MySQL."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,255}$")
    members: dict[str, dict[str, str]] = Field(
        min_length=1, description="member table (database.table, same target) -> {its column: this "
                                  "table's column} for the columns of the partition key")


class TableMapping(_Section):
    source: str = Field(description="database.table")
    target: str | None = Field(None, description="DynamoDB table; default: the source table name")
    key: KeySpec = KeySpec()
    exclude: tuple[str, ...] = ()
    rename: dict[str, str] = Field(default_factory=dict, description="column -> attribute name")
    types: dict[str, ColumnType] = Field(default_factory=dict, description="column -> type override")
    null_mode: Literal["explicit", "omit"] = "explicit"
    indexes: tuple[IndexSpec, ...] = Field(
        (), description="secondary access patterns: [{name, pk: column, sk: column}], GSIs in DynamoDB")
    embed: EmbedSpec | None = Field(
        None, description="store this table's rows inside the parent's item: {parent, as, on}")
    collections: tuple[CollectionSpec, ...] = Field(
        (), description="item-collection queries: [{name, members: {table: {column: column}}}]")
    # The map attributes of the tables embedded in this one, set by Settings (not a config option):
    # every writer of this table's items must keep them.
    _children_as: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _embedded_alone(self) -> TableMapping:
        if self.embed is None:
            return self
        given = [o for o, v in (("target", self.target), ("key", self.key.pk or self.key.sk),
                                ("indexes", self.indexes), ("collections", self.collections)) if v]
        if given:
            raise ValueError(f"{self.source} is embedded in {self.embed.parent}: its item is the parent's, "
                             f"so {given} cannot be set; remove them (the parent's mapping has them)")
        if self.embed.parent == self.source:
            raise ValueError(f"{self.source} cannot be embedded in itself")
        return self

    @field_validator("source")
    @classmethod
    def _source_name(cls, v: str) -> str:
        return _db_dot_table(v)

    @field_validator("indexes")
    @classmethod
    def _unique_index_names(cls, v: tuple[IndexSpec, ...]) -> tuple[IndexSpec, ...]:
        names = [ix.name for ix in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"index name(s) {twice} declared twice; each access pattern needs its own name")
        return v

    @property
    def database(self) -> str:
        return self.source.split(".")[0]

    @property
    def table(self) -> str:
        return self.source.split(".")[1]

    @property
    def target_name(self) -> str:
        """The DynamoDB table: ``target``, else the source table's name made a legal DynamoDB
        name (:func:`dynamodb_safe_name`: unchanged when it already is one)."""
        return self.target or dynamodb_safe_name(self.table)

    @property
    def embedded(self) -> bool:
        return self.embed is not None

    @property
    def children_as(self) -> tuple[str, ...]:
        """The map attributes that hold the rows of the tables embedded in this one."""
        return self._children_as


class GateSettings(_Section):
    """Forward-transition gates (DESIGN §1); windows default to the guide's 24 h / 24 h / 48 h / 72 h."""

    window_1_2_s: float = Field(0, ge=0, description="1->2 needs no soak: tables exist, writer connected")
    window_2_3_s: float = Field(24 * 3600, ge=0)
    window_3_4_s: float = Field(24 * 3600, ge=0)
    window_4_5_s: float = Field(48 * 3600, ge=0)
    window_5_final_s: float = Field(72 * 3600, ge=0, description="phase 5 soak before MySQL retirement")
    min_dual_write_success: float = Field(0.99, ge=0, le=1)
    max_validation_error_rate: float = Field(0.001, ge=0, le=1)
    min_validations: int = Field(1000, ge=0)
    max_dynamodb_read_error_rate: float = Field(0.001, ge=0, le=1)
    heartbeat_max_age_s: float = Field(
        60, gt=0, description="a writer/reader heartbeat older than this is down"
    )


class ValidationSettings(_Section):
    """Phase-3 dual reads (DESIGN §1): which reads are compared, and how long lag may hide a change."""

    sample_ratio: float = Field(1.0, ge=0, le=1, description="share of phase-3 reads compared")
    recheck_wait_s: float = Field(
        5.0, ge=0, description="a difference is re-checked once the pipeline has applied past the read; "
                               "how long to wait for that before counting the read as unverified")


class ClientSettings(_Section):
    """The application client (``replicator.client``)."""

    read_timeout_s: float = Field(2.0, gt=0, description="budget of one read from one store")
    read_your_writes_wait_s: float = Field(
        1.0, ge=0, description="phase 4: how long a read of a row this client wrote waits for the pipeline "
                               "to apply the write before it is served from MySQL instead")
    remember_writes_s: float = Field(
        60.0, gt=0, description="how long a written key is remembered for read-your-writes")
    pool_size: int = Field(8, ge=1, le=256, description="MySQL connections (and DynamoDB pool) per client")
    mysql_user: str | None = Field(None, description="the application's MySQL user; default: mysql.user")
    mysql_password: SecretStr | None = Field(None, description="its password; default: mysql.password")
    json_columns: Literal["text", "parsed"] = Field(
        "text", description="JSON columns as canonical text (what PyMySQL gives) or parsed documents")
    dual_read_workers: int = Field(8, ge=1, le=256, description="threads for phase-3 DynamoDB reads")


class CutoverSettings(_Section):
    """The switch of the write target between MySQL and DynamoDB (DESIGN §3.6, docs/design.md)."""

    max_write_pause_s: float = Field(2.0, gt=0, description="bound of the write pause of a 4<->5 switch")
    fence_table: str = Field(
        "replicator.fence", description="database.table of the MySQL fence row (write target, generation of "
                                        "versions); the pipeline reads its binlog events, not a mapped table")
    reverse_versions_table: str = Field(
        "replicator.reverse_versions",
        description="database.table where reverse replication keeps the last applied version of each MySQL "
                    "row that can move between items (keys over other columns than the primary key, "
                    "embedded children); created at its start-up when such a mapping exists")
    reverse_versions_retention_s: float = Field(
        172_800.0, ge=90_000.0,
        description="reverse replication deletes a row's version from reverse_versions_table once it has not "
                    "changed for this long (hourly, in batches): DynamoDB Streams keep records 24 h and a "
                    "trimmed shard stops the reverse, so no record older than that can still arrive; at "
                    "least 25 h")
    lease_ttl_s: float = Field(
        5.0, gt=0, description="a client whose lease is older than this is not waited for, and refuses "
                               "to write")
    dynamodb_fence_table: str = Field(
        "replicator-fence", description="DynamoDB table of the fence item (dynamodb.table_prefix prepended)")
    mysql_user: str | None = Field(
        None, description="MySQL user that flips the fence row (needs CREATE on its database and UPDATE); "
                          "default: client.mysql_user, else mysql.user")
    mysql_password: SecretStr | None = Field(None, description="its password")
    gate_max_lag_s: float = Field(
        1.0, ge=0, description="the 4->5 lag gate, judged while the application writes: reader lag at most "
                               "this; the switch itself drains the lag to zero under the write freeze")
    gate_max_messages_behind: int = Field(
        200, ge=0, description="the 4->5 lag gate: the writer at most this many messages behind the "
                               "table topics (drained to zero under the freeze; keep it below what the "
                               "writer applies in half of max_write_pause_s)")

    @field_validator("fence_table", "reverse_versions_table")
    @classmethod
    def _fence_db_dot_table(cls, v: str) -> str:
        return _db_dot_table(v)


class ReaderSettings(_Section):
    """The binlog reader (``replicator run``)."""

    decoder: Literal["auto", "compiled", "python"] = Field(
        "auto", description="row decoding: the compiled extension built by `make setup` (compiled), the pure-"
                            "Python path (python), or compiled where it is built and else Python with a "
                            "warning (auto)")


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


class MetricsSettings(_Section):
    port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port; 0 = off")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid",
        case_sensitive=False,
    )

    mysql: MySQLSettings = MySQLSettings()
    kafka: KafkaSettings = KafkaSettings()
    dynamodb: DynamoDBSettings = DynamoDBSettings()
    control: ControlSettings = ControlSettings()
    tables: tuple[TableMapping, ...] = ()
    gates: GateSettings = GateSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    validation: ValidationSettings = ValidationSettings()
    client: ClientSettings = ClientSettings()
    cutover: CutoverSettings = CutoverSettings()
    reader: ReaderSettings = ReaderSettings()

    @model_validator(mode="after")
    def _unique_tables(self) -> Settings:
        seen: set[str] = set()
        for i, t in enumerate(self.tables):
            if t.source in seen:
                raise ValueError(f"tables[{i}].source {t.source!r} is mapped twice")
            seen.add(t.source)
        for i, t in enumerate(self.tables):
            if t.embed is None:
                continue
            parent = self.table(t.embed.parent)
            if parent is None:
                raise ValueError(f"tables[{i}].embed.parent {t.embed.parent!r} is not a mapped table; "
                                 f"map it too (tables[].source)")
            if parent.embed is not None:
                raise ValueError(f"tables[{i}].embed.parent {t.embed.parent!r} is itself embedded; embed "
                                 f"into its parent {parent.embed.parent!r} or map it to a table")
            clash = [c.source for c in self.tables if c.embed is not None and c is not t
                     and c.embed.parent == t.embed.parent and c.embed.as_ == t.embed.as_]
            if clash:
                raise ValueError(f"tables {t.source} and {clash[0]} are both embedded in {t.embed.parent} "
                                 f"as {t.embed.as_!r}; give one of them another embed.as")
        for t in self.tables:
            t._children_as = tuple(c.embed.as_ for c in self.children(t.source) if c.embed is not None)
        return self

    def children(self, parent: str) -> tuple[TableMapping, ...]:
        """The mappings embedded in ``parent``."""
        return tuple(t for t in self.tables if t.embed is not None and t.embed.parent == parent)

    def mysql_as(self, user: str | None, password: SecretStr | None) -> MySQLSettings:
        """``mysql`` with another user (and password) where given: the application's, the fence's."""
        update: dict[str, Any] = {}
        if user:
            update["user"] = user
        if password is not None:
            update["password"] = password
        return self.mysql.model_copy(update=update) if update else self.mysql

    @property
    def namespace(self) -> str:
        return self.control.namespace or self.kafka.topic_prefix

    @property
    def transactional_id(self) -> str:
        return self.kafka.transactional_id or f"{self.kafka.topic_prefix}.reader"

    @property
    def writer_group(self) -> str:
        """Consumer group of the DynamoDB writer."""
        return f"{self.kafka.topic_prefix}.writer"

    @property
    def validator_group(self) -> str:
        return f"{self.kafka.topic_prefix}.validator"

    def table(self, source: str) -> TableMapping | None:
        return next((t for t in self.tables if t.source == source), None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment over the file: init_settings carries the parsed YAML (see load_settings).
        return (env_settings, init_settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read the file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"--config {path}: the top level must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def describe_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"] if not isinstance(p, int)).upper()
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) or err["type"] == "missing" else f" (got {value!r})"
        hint = f"; set it in {source} or {env}" if err["loc"] else ""
        lines.append(f"option {loc}: {err['msg']}{shown}{hint}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once: YAML file (optional) under ``REPLICATOR_*`` environment."""
    data = _read_yaml(config) if config is not None else {}
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(config or "the config file"))) from exc
