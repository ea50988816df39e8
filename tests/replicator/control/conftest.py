"""A control store of each backend, namespaced for the test (Redis keys / DynamoDB table removed after)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from replicator.control import ControlStore, open_control_store
from replicator.settings import Settings


@pytest.fixture(params=["redis", "dynamodb"])
def control_settings(
    request: pytest.FixtureRequest, settings: Settings, redis_client: Any, dynamodb: Any,
) -> Settings:
    """The test's settings with control.backend set to each backend in turn."""
    control = settings.control.model_copy(update={"backend": request.param})
    return settings.model_copy(update={"control": control})


@pytest.fixture()
def store(control_settings: Settings) -> Iterator[ControlStore]:
    with open_control_store(control_settings) as s:
        yield s
