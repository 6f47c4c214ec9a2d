"""Server layer: `python -m sdk.serve <import-package>`, the entry point the host spawns.

Contract: as `_serving` says (cookie, stdio, the package's import, the wire until `shutdown` or
stdin EOF, the zygote when the host passes its control socket). This module only turns Python's
cyclic garbage collector off before the SDK's own imports (pydantic, asyncio, msgspec, the
SDK's models): they make ~60,000 objects that live as long as the process, and the collections
their allocations set off cost 25-40 ms of a 245-300 ms start (`bench/startup.py`, docs/
benchmarks.md). `_serving.main` turns it back on before any plugin code runs.
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    enabled = gc.isenabled()
    gc.disable()
    try:
        from ._serving import main as serve_main

        return serve_main(argv)  # a served plugin ends in `os._exit`; a refusal returns here
    finally:
        if enabled:
            gc.enable()


if __name__ == "__main__":
    sys.exit(main())
