"""Wire layer: typed method descriptors — one params type and one result type per wire method.

Contract: `Calls.X` is a `CallMethod[P, R]` (a request: name, params type, result type) and
`Notifications.X` a `NotifyMethod[P]`; code that sends or serves a method takes the descriptor,
so the type checker ties each method name to its params and result and nobody decodes a result
as `Any`. The names are `Method`'s; the shapes are `_methods`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from ._methods import (
    CancelParams,
    CompletionRunParams,
    CompletionRunResult,
    ContextMessagesParams,
    ContextMessagesResult,
    HttpRequestParams,
    HttpResponseResult,
    InitializeParams,
    InitializeResult,
    LogParams,
    Method,
    PingParams,
    PingResult,
    RuntimeEventsParams,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
    ShutdownParams,
    SpecParams,
    SpecResult,
    ValidateParams,
    ValidateResult,
)

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class CallMethod(Generic[P, R]):
    """A request method: its name, the type of its params and the type of its result."""

    name: str
    params: type[P]
    result: type[R]


@dataclass(frozen=True, slots=True)
class NotifyMethod(Generic[P]):
    """A notification method: its name and the type of its params."""

    name: str
    params: type[P]


class Calls:
    """Every request method of protocol v1 (host -> plugin, then plugin -> host)."""

    INITIALIZE: Final = CallMethod(Method.INITIALIZE, InitializeParams, InitializeResult)
    SPEC: Final = CallMethod(Method.SPEC, SpecParams, SpecResult)
    VALIDATE: Final = CallMethod(Method.VALIDATE, ValidateParams, ValidateResult)
    RUNTIME_OPEN: Final = CallMethod(Method.RUNTIME_OPEN, RuntimeOpenParams, RuntimeOpenResult)
    RUNTIME_FINISH: Final = CallMethod(
        Method.RUNTIME_FINISH, RuntimeFinishParams, RuntimeFinishResult
    )
    COMPLETION_RUN: Final = CallMethod(
        Method.COMPLETION_RUN, CompletionRunParams, CompletionRunResult
    )
    HTTP_REQUEST: Final = CallMethod(Method.HTTP_REQUEST, HttpRequestParams, HttpResponseResult)
    PING: Final = CallMethod(Method.PING, PingParams, PingResult)
    SHUTDOWN: Final = CallMethod(Method.SHUTDOWN, ShutdownParams, type(None))
    CONTEXT_MESSAGES: Final = CallMethod(
        Method.CONTEXT_MESSAGES, ContextMessagesParams, ContextMessagesResult
    )


class Notifications:
    """Every notification method of protocol v1."""

    RUNTIME_EVENTS: Final = NotifyMethod(Method.RUNTIME_EVENTS, RuntimeEventsParams)
    LOG: Final = NotifyMethod(Method.LOG, LogParams)
    CANCEL: Final = NotifyMethod(Method.CANCEL, CancelParams)
