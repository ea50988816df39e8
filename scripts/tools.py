#!/usr/bin/env python3
"""Build the deployment checkers from the Go module proxy into ``.stack/tools/``.

    python3 scripts/tools.py helm      helm (helm.sh/helm/v3), for `helm lint` / `helm template`
    python3 scripts/tools.py toxiproxy toxiproxy-server (github.com/Shopify/toxiproxy/v2), the TCP
                                       proxy of the fault campaign (`make chaos`, tests/chaos/)

The rendered manifests are then checked against the Kubernetes schemas by the
``kubernetes-validate`` package (PyPI, a dev dependency: it ships the schemas), so nothing is
fetched at test time. Idempotent: a tool already built at the pinned version is kept. Only the
standard library is used; the Go toolchain on the machine builds (GOTOOLCHAIN=local: no
toolchain download).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".stack" / "tools"
PINNED = {
    "helm": ("helm.sh/helm/v3/cmd/helm", "v3.19.0"),
    "toxiproxy-server": ("github.com/Shopify/toxiproxy/v2/cmd/server", "v2.12.0"),
}
# `go install` names a binary after its package's last path element ("server"): renamed after.
BINARY = {"toxiproxy-server": "server"}
ALIASES = {"toxiproxy": "toxiproxy-server"}


def build(name: str) -> Path:
    package, version = PINNED[name]
    binary = TOOLS / name
    stamp = TOOLS / f".{name}.version"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == version:
        return binary
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        sys.exit(f"[tools] {name}: no Go toolchain (`go`) on PATH; install Go 1.24+ to build it")
    TOOLS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(TOOLS), "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    print(f"[tools] building {package}@{version} (first time: several minutes)", flush=True)
    subprocess.run([go, "install", f"{package}@{version}"], check=True, env=env, cwd=TOOLS)
    built = TOOLS / BINARY.get(name, name)
    if built != binary:
        built.replace(binary)
    stamp.write_text(version + "\n")
    return binary


def main(argv: list[str]) -> int:
    names = [ALIASES.get(n, n) for n in argv] or sorted(PINNED)
    unknown = [n for n in names if n not in PINNED]
    if unknown:
        print(f"[tools] unknown tool(s) {unknown}; known: {sorted(PINNED)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"[tools] {name}: {build(name)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
