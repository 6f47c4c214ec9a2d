"""plugbox demo: the bundled plugins driven end to end, outside the host library.

`run_demo(config, console=...)` is what `plugbox demo` runs (the CLI imports this package only
for that command); `plugbox_demo.scripted_call` plays an offline voice call through a real
pipecat pipeline, for the demo, the end-to-end tests and the live-call benchmark. The demo's
plugin names, webhook secret and signing scheme live here, never in `host`.
"""

from ._demo import run_demo as run_demo

__all__ = ["run_demo"]
