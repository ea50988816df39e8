"""The fences of a switch of the write target (docs/design.md): one in each store.

- MySQL: the fence row (``cutover.fence_table``, see :mod:`replicator.fence`). Every client
  write transaction reads it first under a shared lock; the controller's ``UPDATE`` waits for
  the transactions in flight and makes every later one see that MySQL no longer takes writes.
- DynamoDB: the fence item (``cutover.dynamodb_fence_table``). Every phase-5 write transaction
  carries a ``ConditionCheck`` on it (``writes_to = dynamodb`` at the writer's generation);
  the controller flips it when writes go back to MySQL.

Pure request and statement builders; the I/O is the caller's.
"""

from __future__ import annotations

from typing import Any

from replicator.fence import select_fence_sql
from replicator.settings import Settings

FENCE_KEY = {"pk": {"S": "fence"}}


def dynamodb_fence_table(settings: Settings) -> str:
    return settings.dynamodb.table_prefix + settings.cutover.dynamodb_fence_table


def mysql_fence_lock_sql(fence_table: str) -> str:
    """The first statement of every client write transaction in phases 1-4."""
    return select_fence_sql(fence_table, lock="LOCK IN SHARE MODE")


def condition_check(table: str, generation: int) -> dict[str, Any]:
    """The ``ConditionCheck`` element every phase-5 write transaction starts with."""
    return {"ConditionCheck": {
        "TableName": table, "Key": FENCE_KEY,
        "ConditionExpression": "writes_to = :dynamodb AND generation = :g",
        "ExpressionAttributeValues": {":dynamodb": {"S": "dynamodb"}, ":g": {"N": str(generation)}},
    }}


def fence_item(writes_to: str, generation: int, at: float) -> dict[str, Any]:
    return {**FENCE_KEY, "writes_to": {"S": writes_to}, "generation": {"N": str(generation)},
            "updated_at": {"N": f"{at:.6f}"}}


def fence_table_definition(table: str) -> dict[str, Any]:
    return {"TableName": table, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
