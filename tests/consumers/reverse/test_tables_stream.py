"""``replicator write --create-tables`` gives every table the NEW_AND_OLD_IMAGES stream reverse
replication reads (a fake DynamoDB client; the real one is exercised by the integration tests)."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.writer.tables import TableSpec, ensure_tables
from replicator.errors import ConfigError, TargetUnavailable
from replicator.mapping import KeyAttribute

SPEC = TableSpec("users", "s.users", (KeyAttribute("id", "HASH", "N", column="id"),))


class Tables:
    """describe/create/update of one table, streams included; ``slow`` UpdateTable calls time out."""

    def __init__(self, exists: bool, view: str | None = None, slow: int = 0) -> None:
        self.exists, self.view, self.slow = exists, view, slow
        self.created: dict[str, Any] = {}
        self.updates: list[dict[str, Any]] = []

    def describe_table(self, TableName: str) -> dict[str, Any]:
        if not self.exists:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}},
                              "DescribeTable")
        desc: dict[str, Any] = {"TableStatus": "ACTIVE",
                                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}]}
        if self.view:
            desc["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": self.view}
            desc["LatestStreamArn"] = "arn:stream"
        return {"Table": desc}

    def create_table(self, **kw: Any) -> None:
        self.created = kw
        self.exists = True
        spec = kw.get("StreamSpecification") or {}
        self.view = spec.get("StreamViewType") if spec.get("StreamEnabled") else None

    def get_waiter(self, name: str) -> Any:
        class Waiter:
            def wait(self, **kw: Any) -> None:
                pass

        return Waiter()

    def update_time_to_live(self, **kw: Any) -> None:
        pass

    def update_table(self, **kw: Any) -> None:
        self.updates.append(kw)
        if self.slow:
            self.slow -= 1
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url="http://local")
        self.view = kw["StreamSpecification"]["StreamViewType"]


def _ensure(client: Tables, create: bool = True) -> list[str]:
    now = [0.0]
    return ensure_tables(client, [SPEC], create=create, sleep=lambda s: now.__setitem__(0, now[0] + s),
                         clock=lambda: now[0])


def test_a_created_table_has_a_new_and_old_images_stream() -> None:
    client = Tables(exists=False)
    assert _ensure(client) == ["users"]
    assert client.created["StreamSpecification"] == {"StreamEnabled": True,
                                                     "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert client.updates == []


def test_the_stream_is_turned_on_for_an_existing_table_without_one_even_if_update_table_times_out() -> None:
    client = Tables(exists=True, slow=2)
    assert _ensure(client) == []
    assert client.view == "NEW_AND_OLD_IMAGES" and len(client.updates) == 3


def test_without_create_tables_a_missing_stream_is_left_alone() -> None:
    client = Tables(exists=True)
    _ensure(client, create=False)
    assert client.updates == [] and client.view is None


def test_a_stream_of_another_view_type_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"'users' has a stream of view type KEYS_ONLY.*NEW_AND_OLD_IMAGES"):
        _ensure(Tables(exists=True, view="KEYS_ONLY"))


def test_a_stream_that_never_turns_on_is_a_transient_error_after_the_bound() -> None:
    with pytest.raises(TargetUnavailable, match="not enabled 120 s after"):
        _ensure(Tables(exists=True, slow=10**6))


def test_tests_and_benchmarks_that_never_go_back_may_leave_streams_off() -> None:
    client = Tables(exists=False)
    now = [0.0]
    ensure_tables(client, [SPEC], create=True, stream=False, sleep=lambda s: now.__setitem__(0, now[0] + s),
                  clock=lambda: now[0])
    assert "StreamSpecification" not in client.created and client.updates == []
