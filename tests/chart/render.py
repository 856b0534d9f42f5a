#!/usr/bin/env python3
"""Lint or render the Palisade Helm chart with Helm's own Go engine, without a helm binary.

Uses the PyPI package helm-python-sdk (it embeds Helm's Go SDK as a shared library):

    pip install helm-python-sdk==0.2.2

Usage (from anywhere):

    tests/chart/render.py lint   [--set key=value]... [--values-json JSON] [--namespace NS]
    tests/chart/render.py render [--set key=value]... [--values-json JSON] [--namespace NS]
                                 [--release NAME] [--json]

`lint` prints every finding and exits 1 if there is an error (with --strict, a warning too).
`render` prints the manifests as one multi-document YAML stream, each preceded by a
`# Source:` comment like `helm template`; with --json, a JSON object mapping each template
path to its rendered text, which is what operator/tests/chart.rs reads. Values are
validated against values.schema.json either way. Exit status 2 means helm-python-sdk is
missing, 1 that Helm refused the chart or the values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

CHART = Path(__file__).resolve().parents[2] / "charts" / "palisade"
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}

try:
    import helm_python as helm
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(
        f"render.py: cannot import helm_python ({exc}); "
        "install it with: pip install helm-python-sdk==0.2.2",
        file=sys.stderr,
    )
    sys.exit(2)


def merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """Deep-merge `extra` into `into` (--set over --values-json, as helm puts --set over -f)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def user_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.values_json:
        merge(values, json.loads(args.values_json))
    if args.set:
        # One expression, as helm itself folds every --set into the same map: list items set
        # by index in separate flags (a[0].b=1 --set a[0].c=2) end up in one item.
        merge(values, helm.parse_set_string(",".join(args.set)))
    return values


def lint(args: argparse.Namespace) -> int:
    report = helm.lint(
        os.fspath(CHART),
        user_values(args),
        strict=args.strict,
        namespace=args.namespace,
        kube_version=args.kube_version,
    )
    failing = 3 if not args.strict else 2
    failed = False
    for message in report.get("messages") or []:
        severity = message.get("severity", 0)
        failed |= severity >= failing
        print(f"[{SEVERITY.get(severity, severity)}] {message.get('path')}: {message.get('error')}")
    for error in report.get("errors") or []:
        failed = True
        print(f"[ERROR] {error}")
    print(f"{report.get('total_charts_linted', 0)} chart(s) linted, {'failed' if failed else 'no failures'}")
    return 1 if failed else 0


def render(args: argparse.Namespace) -> int:
    with helm.Chart.load(os.fspath(CHART)) as chart:
        manifests = chart.render(
            user_values(args),
            name=args.release,
            namespace=args.namespace,
            is_install=True,
        )
    # Templates that render to nothing (a disabled feature) and helpers are left out.
    manifests = {
        path: text
        for path, text in sorted(manifests.items())
        if text.strip() and not path.endswith(".tpl") and not path.endswith("NOTES.txt")
    }
    if args.json:
        json.dump(manifests, sys.stdout, indent=1)
        print()
    else:
        for path, text in manifests.items():
            print(f"---\n# Source: {path}\n{text.strip()}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("lint", "render"):
        p = sub.add_parser(name)
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="as helm --set")
        p.add_argument("--values-json", metavar="JSON", help="values as one JSON object")
        p.add_argument("--namespace", default="palisade-system")
        if name == "lint":
            p.add_argument("--strict", action="store_true", help="warnings fail too")
            p.add_argument("--kube-version", default=None, help="e.g. v1.29.0")
        else:
            p.add_argument("--release", default="palisade")
            p.add_argument("--json", action="store_true", help="JSON {template path: text}")
    args = parser.parse_args()
    try:
        return lint(args) if args.command == "lint" else render(args)
    except helm.HelmError as exc:
        print(f"render.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
