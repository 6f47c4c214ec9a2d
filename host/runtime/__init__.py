"""Live call layer: pipecat calls bridged to plugin processes, and call-finish snapshots.

`async with open_call(context, plugins=...) as sessions:` is one call: sessions with the contract's
`attach(task)` and `on_call_finished(...)`, whose event pumps end with the block at the latest;
`finish_call(...)` persists their snapshots into the run's logs.
pipecat is imported only when a session attaches to a worker.
"""

from .._keys import LIVE_KEY as LIVE_KEY
from ._finish import finish_call as finish_call
from ._queue import RunBridge as RunBridge
from ._sessions import HostRuntimeSession as HostRuntimeSession
from ._sessions import IntegrationRuntimeContext as IntegrationRuntimeContext
from ._sessions import open_call as open_call

__all__ = [
    "LIVE_KEY",
    "HostRuntimeSession",
    "IntegrationRuntimeContext",
    "RunBridge",
    "finish_call",
    "open_call",
]
