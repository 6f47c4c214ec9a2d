"""Wire layer: the one error tree of plugbox, with JSON-RPC codes as class attributes.

```
PluginError (-32000)                       base: every failure that crosses or concerns the wire
 +-- ParseError (-32700)                   a frame that is not JSON or not JSON-RPC
 +-- InvalidRequest (-32600)
 +-- MethodNotFound (-32601)
 +-- InvalidParams (-32602)
 +-- InternalError (-32603)
 +-- FrameTooLarge (-32010)                a frame over the negotiated maximum size
 +-- PluginTimeout (-32001, TimeoutError)  a call passed its deadline ($/cancel was sent)
 +-- PluginCancelled (-32002)              the caller cancelled; the handler was cancelled
 +-- PluginCrashed (-32003)                the process died with calls pending
 |    +-- LimitExceeded (-32007)           ... because a sandbox limit killed it
 +-- HandshakeError (-32004)               initialize failed: cookie, version, import crash
 +-- SandboxError (-32005)                 the sandbox refused to start the plugin (policy)
 +-- RemoteError (-32006)                  a handler raised; remote type and traceback kept
 +-- CircuitOpen (-32008)                  too many crashes; calls fail fast until cool-down
 +-- ConnectionClosed (-32009)             the stream closed with calls pending
```

Contract: `error_to_wire` is the only way an exception becomes a wire error and `error_from_wire`
the only way back. A wire error's `data` carries `type` (the remote exception's class name),
`traceback` (text, secrets already redacted by the sender) and any structured `fields`.
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar

import msgspec


class WireError(msgspec.Struct, omit_defaults=True):
    """The `error` member of a JSON-RPC error response."""

    code: int
    message: str
    data: dict[str, Any] | None = None


class PluginError(Exception):
    """Base of every plugbox error. `plugin` and `method` name where it happened, when known."""

    code: ClassVar[int] = -32000

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        method: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.plugin = plugin
        self.method = method
        self.data = data or {}

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"plugin {self.plugin!r}" if self.plugin else "",
                f"method {self.method!r}" if self.method else "",
            )
            if part
        )
        return f"{where}: {self.message}" if where else self.message


class ParseError(PluginError):
    code = -32700


class InvalidRequest(PluginError):
    code = -32600


class MethodNotFound(PluginError):
    code = -32601


class InvalidParams(PluginError):
    code = -32602


class InternalError(PluginError):
    code = -32603


class PluginTimeout(PluginError, TimeoutError):
    code = -32001


class PluginCancelled(PluginError):
    code = -32002


class PluginCrashed(PluginError):
    code = -32003


class HandshakeError(PluginError):
    code = -32004


class SandboxError(PluginError):
    code = -32005


class RemoteError(PluginError):
    """A remote handler raised. Keeps the remote type name and traceback text."""

    code = -32006

    @property
    def remote_type(self) -> str:
        return str(self.data.get("type", ""))

    @property
    def remote_traceback(self) -> str:
        return str(self.data.get("traceback", ""))


class LimitExceeded(PluginCrashed):
    """A sandbox limit (memory, CPU, file size, processes) killed the plugin."""

    code = -32007

    @property
    def limit(self) -> str:
        return str(self.data.get("limit", ""))


class CircuitOpen(PluginError):
    code = -32008


class ConnectionClosed(PluginError):
    code = -32009


class FrameTooLarge(PluginError):
    code = -32010


_BY_CODE: dict[int, type[PluginError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        PluginTimeout,
        PluginCancelled,
        PluginCrashed,
        HandshakeError,
        SandboxError,
        RemoteError,
        LimitExceeded,
        CircuitOpen,
        ConnectionClosed,
        FrameTooLarge,
    )
}


def error_to_wire(exc: BaseException, *, redact: Any = None) -> WireError:
    """Turn an exception into the wire error a peer sends back.

    A `PluginError` keeps its own code; anything else is a `RemoteError` carrying the exception's
    type name and traceback. `redact`, when given, is a `str -> str` applied to message and
    traceback text so secrets never cross the wire.
    """
    clean = redact if callable(redact) else (lambda text: text)
    text = "".join(traceback.format_exception(exc))
    if isinstance(exc, PluginError):
        data = dict(exc.data)
        data.setdefault("type", type(exc).__name__)
        data.setdefault("traceback", text)
        data["traceback"] = clean(str(data["traceback"]))
        return WireError(code=exc.code, message=clean(exc.message), data=data)
    message = clean(f"{type(exc).__name__}: {exc}")
    data = {"type": type(exc).__name__, "traceback": clean(text)}
    return WireError(code=RemoteError.code, message=message, data=data)


def error_from_wire(
    error: WireError, *, plugin: str | None = None, method: str | None = None
) -> PluginError:
    """Turn a received wire error back into the matching `PluginError` subclass."""
    cls = _BY_CODE.get(error.code, RemoteError)
    return cls(error.message, plugin=plugin, method=method, data=dict(error.data or {}))
