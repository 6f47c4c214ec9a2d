"""Server layer: `python -m sdk.serve <import-package>`, the entry point the host spawns.

Contract: as `_serving` says (cookie, stdio, the package's import, the wire until `shutdown` or
stdin EOF, the zygote when the host passes its control socket). This module only prepares the
interpreter for the SDK's own imports (pydantic, asyncio, msgspec, the SDK's models):

- Python's cyclic garbage collector is off while they run: they make ~60,000 objects that live
  as long as the process, and the collections their allocations set off cost 25-40 ms of a
  245-300 ms start (`bench/startup.py`, docs/benchmarks.md). `_serving.main` turns it back on
  before any plugin code runs.
- pydantic's plugin discovery is skipped when `PYDANTIC_DISABLE_PLUGINS` disables every plugin
  (the host sets it): pydantic's plugin loader imports `importlib.metadata` (with `email`,
  `zipfile`, `csv`...) at its own import, on the first model, even when the variable makes it
  return no plugin: 15-25 ms of a start's CPU for nothing (`skip_pydantic_plugin_scan`).
"""

from __future__ import annotations

import gc
import os
import sys
import types
from collections.abc import Iterable
from typing import Any

PYDANTIC_LOADER = "pydantic.plugin._loader"
_ALL_DISABLED = ("__all__", "1", "true")  # pydantic's own spellings of "no plugin at all"


def main(argv: list[str] | None = None) -> int:
    enabled = gc.isenabled()
    gc.disable()
    try:
        skip_pydantic_plugin_scan()
        from ._serving import main as serve_main

        return serve_main(argv)  # a served plugin ends in `os._exit`; a refusal returns here
    finally:
        if enabled:
            gc.enable()


def skip_pydantic_plugin_scan() -> None:
    """Stand in for pydantic's plugin loader while `PYDANTIC_DISABLE_PLUGINS` disables them all.

    pydantic asks `pydantic.plugin._loader.get_plugins()` for plugins on each model it builds;
    with every plugin disabled that returns `()` without looking, but importing the loader
    imported `importlib.metadata` first. The stand-in answers `()` the same way, reading the
    variable on every call as pydantic does; should the process enable plugins later, it loads
    pydantic's real loader then and answers with it from that call on."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in _ALL_DISABLED:
        return
    if PYDANTIC_LOADER in sys.modules:
        return
    stand_in = types.ModuleType(PYDANTIC_LOADER, "plugbox's stand-in: no pydantic plugin")
    stand_in.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules[PYDANTIC_LOADER] = stand_in


def _no_plugins() -> Iterable[Any]:
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") in _ALL_DISABLED:
        return ()
    if getattr(sys.modules.get(PYDANTIC_LOADER), "get_plugins", None) is _no_plugins:
        del sys.modules[PYDANTIC_LOADER]  # enabled since: pydantic's own loader from now on
    import importlib

    real: Any = importlib.import_module(PYDANTIC_LOADER)
    return real.get_plugins()  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.exit(main())
