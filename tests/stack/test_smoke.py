"""The four servers are real and configured the way the product needs them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.conftest import admin_connect

pytestmark = pytest.mark.integration


def test_mariadb_writes_row_events_with_full_metadata(stack_env: dict[str, str], mysql_admin: Any,
                                                      mysql_db: str) -> None:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import WriteRowsEvent

    with mysql_admin.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(10,2))")
        cur.execute("INSERT INTO t VALUES (1, 'ü', 9.99)")
    stream = BinLogStreamReader(
        connection_settings={
            "host": stack_env["REPLICATOR_MYSQL__HOST"], "port": int(stack_env["REPLICATOR_MYSQL__PORT"]),
            "user": stack_env["REPLICATOR_MYSQL__USER"], "password": stack_env["REPLICATOR_MYSQL__PASSWORD"],
        },
        server_id=900_000 + uuid.uuid4().int % 1000, log_file=file, log_pos=pos, resume_stream=True,
        blocking=False, only_events=[WriteRowsEvent], only_schemas=[mysql_db],
    )
    try:
        rows = [(ev, r) for ev in stream for r in ev.rows]
    finally:
        stream.close()
    assert len(rows) == 1
    ev, row = rows[0]
    # Column names come from the binlog's own metadata (binlog_row_metadata=FULL),
    # not from information_schema.
    assert ev.table_map[ev.table_id].column_name_flag is True
    assert row["values"] == {"id": 1, "name": "ü", "price": __import__("decimal").Decimal("9.99")}


def test_replication_user_has_only_reader_grants(stack_env: dict[str, str]) -> None:
    import pymysql

    conn = pymysql.connect(
        host=stack_env["REPLICATOR_MYSQL__HOST"], port=int(stack_env["REPLICATOR_MYSQL__PORT"]),
        user=stack_env["REPLICATOR_MYSQL__USER"], password=stack_env["REPLICATOR_MYSQL__PASSWORD"],
    )
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(r[0] for r in cur.fetchall()).upper()
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("CREATE DATABASE should_not_be_allowed")
    conn.close()
    assert "REPLICATION SLAVE" in grants and "SELECT" in grants
    assert "ALL PRIVILEGES" not in grants and "INSERT" not in grants


def test_binlog_settings_are_row_full_with_gtids(stack_env: dict[str, str]) -> None:
    conn = admin_connect(stack_env)
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format',"
                    "'binlog_row_image','binlog_row_metadata','server_id','gtid_strict_mode')")
        found = dict(cur.fetchall())
    conn.close()
    assert found["log_bin"] == "ON"
    assert found["binlog_format"] == "ROW"
    assert found["binlog_row_image"] == "FULL"
    assert found.get("binlog_row_metadata", "FULL") == "FULL"
    assert int(found["server_id"]) > 0


def test_kafka_read_committed_consumer_never_sees_aborted_messages(stack_env: dict[str, str], unique: str,
                                                                  kafka_cleanup: None) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = stack_env["REPLICATOR_KAFKA__BOOTSTRAP_SERVERS"]
    topic = f"{unique}.smoke"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{unique}-tx"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.flush(10)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"committed" not in seen:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.append(msg.value())
    consumer.close()
    assert seen == [b"committed"]


def test_dynamodb_local_rejects_a_failing_condition_expression(dynamodb: Any, unique: str) -> None:
    table = f"{unique}-smoke"
    dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "ver": {"N": "5"}})
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(
            TableName=table, Item={"pk": {"S": "a"}, "ver": {"N": "4"}},
            ConditionExpression="attribute_not_exists(pk) OR ver < :v",
            ExpressionAttributeValues={":v": {"N": "4"}},
        )
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]["ver"] == {"N": "5"}


def test_redis_pubsub_delivers(redis_client: Any, unique: str) -> None:
    pubsub = redis_client.pubsub()
    channel = f"{unique}:smoke"
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    redis_client.publish(channel, b"hello")
    msg = pubsub.get_message(timeout=5)
    pubsub.close()
    assert msg is not None and msg["data"] == b"hello"
