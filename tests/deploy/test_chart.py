"""The Helm chart: `helm lint --strict`, `helm template`, and the rendered manifests against the
Kubernetes schemas (kubernetes-validate ships them); helm is built by `make tools`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "replicator"
KUBERNETES = "1.30.0"
EVERYTHING = ["--set", "backfill.enabled=true", "--set", "reverse.enabled=true",
              "--set", "validator.replicas=2", "--set", "existingSecret=replicator-secrets"]


def helm() -> str:
    found = os.environ.get("REPLICATOR_HELM") or (str(ROOT / ".stack" / "tools" / "helm")
                                                  if (ROOT / ".stack" / "tools" / "helm").exists()
                                                  else shutil.which("helm"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("helm is not built: `make tools` (scripts/tools.py) builds it", pytrace=False)
        pytest.skip("helm is not built: run `make tools`")
    return found


def render(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run([helm(), "template", "rel", str(CHART), *args], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_chart_lints_strictly() -> None:
    res = subprocess.run([helm(), "lint", "--strict", str(CHART), *EVERYTHING], capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("args", [[], EVERYTHING], ids=["defaults", "everything"])
def test_rendered_manifests_validate_against_the_kubernetes_schemas(args: list[str]) -> None:
    import kubernetes_validate

    docs = render(*args)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_service_monitor_renders_when_asked() -> None:
    kinds = [d["kind"] for d in render("--set", "serviceMonitor.enabled=true")]
    assert kinds.count("ServiceMonitor") == kinds.count("Deployment") == 3


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].removeprefix("rel-replicator-"): d for d in docs if d["kind"] == kind}


def test_roles_run_as_the_guide_wants_them() -> None:
    docs = render(*EVERYTHING)
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"reader", "writer", "validator", "reverse"}
    reader = deployments["reader"]["spec"]
    assert reader["replicas"] == 1 and reader["strategy"] == {"type": "Recreate"}
    assert deployments["validator"]["spec"]["replicas"] == 2
    assert set(by_kind(docs, "PodDisruptionBudget")) == {"writer", "validator"}
    assert set(by_kind(docs, "Service")) == set(deployments)
    job = by_kind(docs, "Job")["backfill"]["spec"]["template"]["spec"]
    assert job["containers"][0]["args"][0] == "backfill" and job["restartPolicy"] == "OnFailure"
    cron = by_kind(docs, "CronJob")["compact"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid" and cron["schedule"]
    compact = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert compact["containers"][0]["args"][:3] == ["compact", "--config", "/etc/replicator/config.yaml"]
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["args"][:3] == [{"reader": "run", "writer": "write", "validator": "validate",
                                  "reverse": "reverse"}[name], "--config", "/etc/replicator/config.yaml"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        assert c["securityContext"]["readOnlyRootFilesystem"]
        assert not c["securityContext"]["allowPrivilegeEscalation"]
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(c) and c["resources"]["requests"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["envFrom"] == [{"secretRef": {"name": "replicator-secrets"}}]


def test_the_config_travels_in_a_config_map_and_no_secret_in_values() -> None:
    (cm,) = by_kind(render(), "ConfigMap").values()
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert config["metrics"]["port"] == 9100 and "password" not in json.dumps(config)
    res = subprocess.run([helm(), "template", "rel", str(CHART), "--set", "config.mysql.password=x"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode != 0 and "schema" in res.stderr


def test_values_match_their_schema() -> None:
    """Without helm: values.yaml against values.schema.json, and the schema refuses a password."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(values)
    values["config"]["mysql"]["password"] = "x"  # noqa: S105 -- the value the schema must refuse
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(values)
