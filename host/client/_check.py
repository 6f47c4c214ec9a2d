"""Boundary layer: a plugin's client in the shape `sdk.testing.check_plugin` drives.

Contract: `CheckCaller(client)` has the `call(method, params, result_type=...)` and
`notify(method, params)` of `sdk.testing`'s `Caller`; each method name is looked up in the typed
catalogue (`sdk.protocol.Calls`, `Notifications`), so the checks' calls take the same typed path
(and the same scrubbing of errors) as the host's own. Notifications go to the running process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdk.protocol import CallMethod, Calls, MethodNotFound, Notifications, NotifyMethod

if TYPE_CHECKING:
    from ._client import PluginClient

_CALLS = {m.name: m for m in vars(Calls).values() if isinstance(m, CallMethod)}
_NOTIFICATIONS = {m.name: m for m in vars(Notifications).values() if isinstance(m, NotifyMethod)}


class CheckCaller:
    """`sdk.testing`'s caller over one plugin's client (used by `plugbox plugins check`)."""

    def __init__(self, client: PluginClient) -> None:
        self.client = client

    async def call(self, method: str, params: Any, *, result_type: Any = None) -> Any:
        descriptor = _CALLS.get(method)
        if descriptor is None:
            raise MethodNotFound(f"no request method {method!r} in protocol v1")
        return await self.client.request(descriptor, params)

    async def notify(self, method: str, params: Any) -> None:
        descriptor = _NOTIFICATIONS.get(method)
        if descriptor is None:
            raise MethodNotFound(f"no notification {method!r} in protocol v1")
        handle = self.client.handle
        process = handle.process or await handle.start()
        await handle.notify(descriptor, params, process=process)
