"""Testing helpers for plugin authors (and plugbox's own plugins): serve, drive, check a package.

Contract: `serve_in_memory(package)` serves a package over an in-memory stream pair and yields a
`PluginClient`; `run_subprocess(import_name, plugin_dir=...)` runs it in a real child process the
way the host does (cookie, stdio, `python -m sdk.serve`); `synthetic_call_events()` is a plausible
live call as events; `check_plugin(client)` / `check_package(...)` run the contract's testing
expectations and the reference's spec lint — node model validation, spec shape and lint, examples,
masking round trip through the host's merge when secrets exist, runtime snapshot when a collector
exists, completion happy path and disabled-node skip (enable toggle found in the spec) — and report
each one as passed, failed (naming the expectation), skipped (with the reason) or warning.
"""

from ._checker import CheckReport as CheckReport
from ._checker import Expectation as Expectation
from ._checker import ExpectationFailed as ExpectationFailed
from ._checks import check_package as check_package
from ._checks import check_plugin as check_plugin
from ._checks import import_plugin as import_plugin
from ._client import Caller as Caller
from ._client import PluginClient as PluginClient
from ._client import run_subprocess as run_subprocess
from ._client import serve_in_memory as serve_in_memory
from ._client import synthetic_call_events as synthetic_call_events

__all__ = [
    "Caller",
    "CheckReport",
    "Expectation",
    "ExpectationFailed",
    "PluginClient",
    "check_package",
    "check_plugin",
    "import_plugin",
    "run_subprocess",
    "serve_in_memory",
    "synthetic_call_events",
]
