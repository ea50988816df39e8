"""docker/compose.yaml against the Compose Specification's JSON schema (shipped in docker/,
from compose-spec/compose-spec, Apache-2.0), and consistent with the stack's endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((DOCKER / "compose-spec.json").read_text())
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)
    assert {"mysql", "redis", "kafka", "dynamodb"} <= set(compose["services"])


def test_the_compose_schema_refuses_a_broken_file() -> None:
    schema = json.loads((DOCKER / "compose-spec.json").read_text())
    broken = {"services": {"mysql": {"image": "mysql:8.4", "ports": "13306:3306", "restart": 3}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_the_compose_ports_are_the_ones_its_env_file_names() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    env = (DOCKER / "stack.env").read_text()
    for service in compose["services"].values():
        for port in service.get("ports", []):
            host_port = str(port).split(":")[1]
            assert host_port in env, f"{port} not in docker/stack.env"
