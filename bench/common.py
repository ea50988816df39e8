"""What the benchmarks share: the stack's administrator, and removing a run's resources.

A benchmark namespaces everything it creates by one run id (database, topic prefix, table
prefix, control namespace) and removes it all at the end through the demo's clean-up, which
does the same for the demo's runs.
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from replicator.demo.cleanup import remove_demo_resources
from replicator.settings import MySQLSettings, Settings


def admin_mysql(settings: Settings) -> MySQLSettings:
    """``settings.mysql`` as the local stack's administrator (creates and drops databases)."""
    return settings.mysql.model_copy(update={
        "user": os.environ.get("STACK_MYSQL_ADMIN_USER", "admin"),
        "password": SecretStr(os.environ.get("STACK_MYSQL_ADMIN_PASSWORD", "")),
    })


def remove_run(settings: Settings, database: str) -> None:
    """Drop the run's database, topics, consumer groups, DynamoDB tables and control keys; a
    failure is printed and the rest goes on (a benchmark's clean-up never hides its figures)."""
    for failure in remove_demo_resources(settings, admin_mysql(settings), database):
        print(f"clean-up: {failure}")
