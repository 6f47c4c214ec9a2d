"""Testing helpers, checking side: a conformance suite run against a served package.

Contract: `check_plugin(client)` / `check_package(...)` run every expectation of `CHECKS`
(`_expectations.py`): node model validation, the reference's spec shape and spec lint, examples,
the masking round trip through the host's merge, runtime snapshot, completion happy path and the
disabled-node skip. Each is reported as passed, failed (naming what is broken), skipped (with the
reason) or warning (what the reference accepts and plugbox flags). Only failures fail the report.
`import_plugin(directory)` loads a plugin folder's package in this process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from .._package import IntegrationPackageSpec, load_package
from ..protocol import Method, PluginError, SpecParams, SpecResult
from ._checker import CheckReport, Expectation, ExpectationFailed, Warned, _Checker
from ._client import Caller, serve_in_memory
from ._expectations import CHECKS


async def check_plugin(client: Caller) -> CheckReport:
    """Run every expectation against a served plugin."""
    spec: SpecResult = await client.call(Method.SPEC, SpecParams(), result_type=SpecResult)
    checker = _Checker(client, spec)
    report = CheckReport(spec.package_name)
    for name, check in CHECKS:
        try:
            message = await check(checker)
        except (ExpectationFailed, PluginError) as exc:
            report.expectations.append(Expectation(name, "failed", str(exc)))
            continue
        except Warned as warned:
            report.expectations.append(Expectation(name, "warning", str(warned)))
            continue
        status = "skipped" if message.startswith("skipped") else "passed"
        report.expectations.append(Expectation(name, status, message))
    return report


def check_package(package: IntegrationPackageSpec | str | Path) -> CheckReport:
    """`check_plugin` over an in-memory server, from sync test code.

    `package` is a registered package, an import name, or a plugin directory (with `plugin.toml`).
    """
    spec = package if isinstance(package, IntegrationPackageSpec) else _load(package)

    async def run() -> CheckReport:
        async with serve_in_memory(spec) as client:
            return await check_plugin(client)

    return anyio.run(run)


def import_plugin(directory: Path) -> IntegrationPackageSpec:
    """Put a plugin directory on the import path and return the package it registers."""
    return _load(directory)


def _load(target: str | Path) -> IntegrationPackageSpec:
    if isinstance(target, Path):
        import tomllib

        manifest = tomllib.loads((target / "plugin.toml").read_text(encoding="utf-8"))
        if str(target.resolve()) not in sys.path:
            sys.path.insert(0, str(target.resolve()))
        if manifest.get("compat"):
            from .._compat import install_compat_aliases

            install_compat_aliases()
        target = str(manifest["package"])
    return load_package(target)
