"""Property on the real DynamoDB Local: a row stored as an item and read back is the same row.

DynamoDB normalises numbers ("12.50" comes back as "12.5") and drops nothing else; the inverse
mapping must undo that from the column types alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.mapping import TableMapper
from replicator.settings import TableMapping
from tests.replicator.mapping.strategies import COLUMNS, rows

pytestmark = pytest.mark.integration


@pytest.fixture()
def everything_table(dynamodb: Any, unique: str) -> str:
    name = f"{unique}-everything"
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])
    return name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=rows(), null_mode=st.sampled_from(["explicit", "omit"]))
def test_rows_of_every_column_type_survive_a_trip_through_dynamodb(
        dynamodb: Any, everything_table: str, row: dict[str, Any], null_mode: str) -> None:
    mapper = TableMapper(TableMapping(source="shop.everything", null_mode=null_mode), COLUMNS, ("id",))  # type: ignore[arg-type]
    dynamodb.put_item(TableName=everything_table, Item=mapper.to_item(row))
    stored = dynamodb.get_item(TableName=everything_table, Key=mapper.key(row), ConsistentRead=True)["Item"]
    assert mapper.to_row(stored) == row
