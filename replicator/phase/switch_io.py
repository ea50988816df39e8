"""The real fences and drains of the write-target switch (:mod:`replicator.phase.switch`).

- MySQL fence row: created (with ``cutover.mysql_user``, falling back to ``client.mysql_user``
  then ``mysql.user``: it needs CREATE on the fence's database and UPDATE) and flipped with an
  ``UPDATE`` whose lock wait is bounded by the time left; the binlog position right after it
  is the pipeline's drain target.
- DynamoDB fence item: its table created on first use (on-demand), the item put.
- Pipeline drain: :class:`~replicator.control.watermark.PipelineWatermark` over every mapped
  table. Reverse drain and health: the reverse replicator's ``reverse.heartbeat`` marker.
"""

from __future__ import annotations

import math
import time
from typing import Any

from replicator.adapters.dynamodb import dynamo_errors, dynamodb_client, wait_for_table
from replicator.adapters.mysql import connect, mysql_errors
from replicator.control import ControlStore, names
from replicator.control.watermark import PipelineWatermark
from replicator.errors import TableNotFoundError, TargetRejected
from replicator.fence import ensure_fence_table, update_fence_sql
from replicator.phase.fences import FENCE_KEY, dynamodb_fence_table, fence_item, fence_table_definition
from replicator.settings import MySQLSettings, Settings

REVERSE_HEARTBEAT = names.REVERSE_HEARTBEAT
REVERSE_STALE_S = 15.0


def fence_mysql_settings(settings: Settings) -> MySQLSettings:
    c, cl = settings.cutover, settings.client
    if c.mysql_user:
        return settings.mysql_as(c.mysql_user, c.mysql_password)
    return settings.mysql_as(cl.mysql_user, cl.mysql_password)


class StoreFences:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mysql = fence_mysql_settings(settings)
        self._table = settings.cutover.fence_table
        self._dynamo_table = dynamodb_fence_table(settings)
        self._dynamo: Any = None

    def _client(self) -> Any:
        if self._dynamo is None:
            self._dynamo = dynamodb_client(self._settings.dynamodb)
        return self._dynamo

    def prepare(self) -> None:
        conn = connect(self._mysql, autocommit=False)
        try:
            with mysql_errors(f"creating the fence row {self._table}", self._mysql):
                ensure_fence_table(conn, self._table)
        finally:
            conn.close()
        client = self._client()
        try:
            with dynamo_errors("describing the fence table", self._dynamo_table):
                client.describe_table(TableName=self._dynamo_table)
        except TableNotFoundError:
            try:
                with dynamo_errors("creating the fence table", self._dynamo_table):
                    client.create_table(**fence_table_definition(self._dynamo_table))
            except TargetRejected as exc:
                if exc.code != "ResourceInUseException":
                    raise
            wait_for_table(client, self._dynamo_table)
        with dynamo_errors("reading the fence item", self._dynamo_table):
            found = client.get_item(TableName=self._dynamo_table, Key=FENCE_KEY,
                                    ConsistentRead=True).get("Item")
        if found is None:
            self.fence_dynamodb("mysql", 0)

    def fence_mysql(self, writes_to: str, generation: int, timeout_s: float) -> str | None:
        conn = connect(self._mysql, autocommit=False)
        try:
            with mysql_errors(f"setting the fence row {self._table}", self._mysql), conn.cursor() as cur:
                cur.execute("SET SESSION innodb_lock_wait_timeout = %s", (max(1, math.ceil(timeout_s)),))
                cur.execute(update_fence_sql(self._table), (writes_to, generation))
                conn.commit()
                cur.execute("SELECT @@gtid_binlog_pos")
                row = cur.fetchone()
        finally:
            conn.close()
        return str(row[0]) if row and row[0] else None

    def fence_dynamodb(self, writes_to: str, generation: int) -> None:
        with dynamo_errors("setting the fence item", self._dynamo_table):
            self._client().put_item(TableName=self._dynamo_table,
                                    Item=fence_item(writes_to, generation, time.time()))


class StoreDrains:
    def __init__(self, settings: Settings, store: ControlStore) -> None:
        self._settings = settings
        self._store = store
        self._watermark = PipelineWatermark(store, settings)

    def pipeline_applied(self, position: str | None, timeout_s: float) -> bool:
        sources = [t.source for t in self._settings.tables]
        if not sources:
            return True  # nothing is replicated: nothing to drain
        return self._watermark.wait_applied(sources, gtid=position, timeout_s=timeout_s)

    def _heartbeat(self) -> dict[str, Any] | None:
        return self._store.get_marker(REVERSE_HEARTBEAT)

    def reverse_healthy(self) -> tuple[bool, str]:
        beat = self._heartbeat()
        if beat is None:
            return False, ("no reverse replication is running (`replicator reverse`): the writes made in "
                           "phase 5 would not reach MySQL")
        age = time.time() - float(beat.get("ts", 0))
        if age > REVERSE_STALE_S:
            return False, (f"the reverse replication's last heartbeat is {age:.0f} s old: is "
                           "`replicator reverse` up?")
        dead = int(beat.get("deadletters", 0))
        if dead:
            keys = ", ".join(str(k) for k in beat.get("deadletter_keys", [])[:20])
            return False, (f"{dead} phase-5 item(s) could not be written back to MySQL (dead letters: "
                           f"{keys}); fix them in DynamoDB or MySQL first")
        return True, ""

    def reverse_drained(self, since: float, timeout_s: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            beat = self._heartbeat() or {}
            dead = int(beat.get("deadletters", 0))
            if dead:
                keys = ", ".join(str(k) for k in beat.get("deadletter_keys", [])[:20])
                return False, f"{dead} phase-5 item(s) could not be written back to MySQL: {keys}"
            if float(beat.get("caught_up_at", 0)) > since:
                return True, ""
            if time.monotonic() > deadline:
                return False, ("the reverse replication did not catch up with the fence within the pause "
                               "bound")
            time.sleep(0.01)
