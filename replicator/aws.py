"""The one place a boto3 DynamoDB client is built: endpoint, region, timeouts and retries."""

from __future__ import annotations

from typing import Any


def dynamodb_client(endpoint_url: str | None, region: str, *, attempts: int = 3, read_timeout_s: float = 10.0,
                    pool_size: int = 10) -> Any:
    """A low-level DynamoDB client. ``attempts=1`` turns botocore's own retries off, for callers
    that retry themselves and count each retry (the writer)."""
    import boto3
    from botocore.config import Config

    retries: Any = (
        {"total_max_attempts": 1} if attempts <= 1 else {"max_attempts": attempts, "mode": "standard"}
    )
    return boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region, config=Config(
        connect_timeout=5, read_timeout=read_timeout_s, retries=retries, max_pool_connections=pool_size))
