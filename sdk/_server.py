"""Server layer: one plugin package served over a JSON-RPC session (the plugin side of the wire).

Contract: `PluginServer(package).attach(session)` answers every host -> plugin method of protocol v1
(`initialize`, `spec`, `validate`, `runtime.open` / `runtime.events` / `runtime.finish`,
`completion.run`, `http.request`, `ping`, `shutdown`). Author functions that are not coroutines run
in worker threads, so a slow handler never blocks `ping` or other requests. Secrets seen in node
data are registered with the redactor that filters logs and error texts.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
from pydantic import ValidationError

from ._asgi import RoutesApp
from ._build import authoring_notes
from ._contexts import IntegrationCompletionContext, IntegrationRuntimeContext, SyncMessages
from ._package import IntegrationPackageSpec
from ._runtime import IntegrationRuntimeSession
from ._shadow import ShadowTask
from ._threads import run_in_thread
from ._version import SDK_VERSION
from ._views import DefinitionView, graph_view, run_view, user_config_view
from .protocol import (
    SHADOW_EVENT_KINDS,
    SUPPORTED_PROTOCOL_VERSIONS,
    Artifact,
    Capabilities,
    CompletionRunParams,
    CompletionRunResult,
    ContextMessagesParams,
    ContextMessagesResult,
    HandshakeError,
    HttpRequestParams,
    HttpResponseResult,
    InitializeParams,
    InitializeResult,
    InternalError,
    Method,
    MethodNotFound,
    NodeTypeInfo,
    PingParams,
    PingResult,
    RemoteError,
    RpcSession,
    RuntimeEventsParams,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
    SecretScrubber,
    ShutdownParams,
    SpecParams,
    SpecResult,
    ValidateItem,
    ValidateOutcome,
    ValidateParams,
    ValidateResult,
    ValidationIssue,
)

logger = logging.getLogger("plugbox.sdk.server")
_strict_encoder = json.JSONEncoder(allow_nan=False)


_is_coroutine_function: dict[Callable[..., Any], bool] = {}  # inspect's check costs per call


async def call_author(function: Callable[..., Any], *args: Any) -> Any:
    """Await a coroutine function on the loop; run anything else in a worker thread."""
    is_coroutine = _is_coroutine_function.get(function)
    if is_coroutine is None:
        is_coroutine = _is_coroutine_function[function] = inspect.iscoroutinefunction(function)
    if is_coroutine:
        return await function(*args)
    # In a worker thread; one that outlives its cancelled call ends the process (_threads).
    result = await run_in_thread(function, *args)
    return await result if inspect.isawaitable(result) else result


class PluginServer:
    """Serves one `IntegrationPackageSpec`; `import_error` makes `initialize` fail cleanly."""

    def __init__(
        self,
        package: IntegrationPackageSpec | None,
        *,
        import_error: BaseException | None = None,
        redactor: SecretScrubber | None = None,
        package_version: str = "0.0.0",
    ) -> None:
        self.package = package
        self.import_error = import_error
        self.redactor = redactor or SecretScrubber()
        self.package_version = package_version
        self.shutdown_requested = anyio.Event()
        self.event_errors = 0
        self._session: RpcSession | None = None
        self._runs: dict[str, list[IntegrationRuntimeSession]] = {}
        self._shadows: dict[str, ShadowTask] = {}
        self._routes: RoutesApp | None = None
        self._started = time.monotonic()
        nodes = package.nodes if package else ()
        self._sensitive = {node.type_name: node.sensitive_fields for node in nodes}
        self._models = {node.type_name: node.data_model for node in nodes}
        self._messages: dict[str, SyncMessages] = {}

    def attach(self, session: RpcSession) -> None:
        self._session = session
        session.set_redactor(self.redactor.scrub_text)
        routes: list[tuple[str, Callable[[Any], Any], Any]] = [
            (Method.INITIALIZE, self.initialize, InitializeParams),
            (Method.SPEC, self.spec, SpecParams),
            (Method.VALIDATE, self.validate, ValidateParams),
            (Method.RUNTIME_OPEN, self.runtime_open, RuntimeOpenParams),
            (Method.RUNTIME_FINISH, self.runtime_finish, RuntimeFinishParams),
            (Method.COMPLETION_RUN, self.completion_run, CompletionRunParams),
            (Method.HTTP_REQUEST, self.http_request, HttpRequestParams),
            (Method.PING, self.ping, PingParams),
            (Method.SHUTDOWN, self.shutdown, ShutdownParams),
        ]
        for method, handler, params_type in routes:
            session.on_request(method, handler, params_type=params_type)
        session.on_notification(
            Method.RUNTIME_EVENTS, self.runtime_events, params_type=RuntimeEventsParams
        )

    def _require_package(self) -> IntegrationPackageSpec:
        if self.package is None:
            raise HandshakeError(f"the plugin package failed to import: {self.import_error!r}")
        return self.package

    # -- handshake and spec ---------------------------------------------------------------------

    async def initialize(self, params: InitializeParams) -> InitializeResult:
        if self.import_error is not None:
            raise HandshakeError(
                f"the plugin package failed to import: "
                f"{type(self.import_error).__name__}: {self.import_error}",
                data={"traceback": _traceback_text(self.import_error)},
            )
        common = [v for v in params.protocol_versions if v in SUPPORTED_PROTOCOL_VERSIONS]
        if not common:
            raise HandshakeError(
                f"protocol version mismatch: host speaks {params.protocol_versions}, "
                f"plugin speaks {list(SUPPORTED_PROTOCOL_VERSIONS)}"
            )
        package = self._require_package()
        return InitializeResult(
            protocol_version=max(common),
            sdk_version=SDK_VERSION,
            package_name=package.name,
            package_version=self.package_version,
            spec_hash=self.spec_hash(),
            max_frame_size=self._negotiate_frames(params.max_frame_size),
            pid=os.getpid(),
        )

    def _negotiate_frames(self, offered: int) -> int:
        """The smaller of the host's offer and this side's limit binds both ends from now on."""
        if self._session is None:  # served without a session (tests call the handler directly)
            return offered
        size = min(offered, self._session.max_frame_size)
        self._session.limit_frames(size)
        return size

    def _routes_app(self) -> RoutesApp | None:
        package = self._require_package()
        if self._routes is None and package.routers:
            self._routes = RoutesApp(package.routers)
        return self._routes

    async def spec(self, params: SpecParams) -> SpecResult:
        package = self._require_package()
        routes = self._routes_app()
        return SpecResult(
            package_name=package.name,
            nodes=[
                NodeTypeInfo(
                    node.type_name,
                    node.node_spec.wire(),
                    list(node.sensitive_fields),
                    authoring_notes(node.data_model),
                )
                for node in package.nodes
            ],
            capabilities=Capabilities(
                runtime=package.create_runtime_sessions is not None,
                completion=package.run_completion is not None,
                routes=bool(package.routers),
            ),
            routes=routes.route_table() if routes else [],
            openapi=routes.openapi() if routes else None,
            spec_hash=self.spec_hash(),
        )

    def spec_hash(self) -> str:
        package = self._require_package()
        nodes = [node.node_spec.wire() for node in package.nodes]
        canonical = json.dumps(nodes, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    # -- validation -----------------------------------------------------------------------------

    async def validate(self, params: ValidateParams) -> ValidateResult:
        package = self._require_package()
        self.redactor.add_from_nodes(
            ({"type": item.type_name, "data": item.data} for item in params.items), self._sensitive
        )
        return ValidateResult(results=[self._validate_one(package, item) for item in params.items])

    def _validate_one(self, package: IntegrationPackageSpec, item: ValidateItem) -> ValidateOutcome:
        node = package.node(item.type_name)
        if node is None:
            issue = ValidationIssue([], f"unknown node type {item.type_name!r}", "unknown_type")
            return ValidateOutcome(ok=False, errors=[issue])
        try:
            model = node.data_model.model_validate(item.data)
        except ValidationError as exc:
            return ValidateOutcome(ok=False, errors=_issues(exc))
        return ValidateOutcome(ok=True, data=model.model_dump(mode="json"))

    # -- live call ------------------------------------------------------------------------------

    async def runtime_open(self, params: RuntimeOpenParams) -> RuntimeOpenResult:
        package = self._require_package()
        factory = package.create_runtime_sessions
        if factory is None:
            return RuntimeOpenResult(sessions=[], subscriptions=[])
        wire = params.context
        self.redactor.add_from_nodes(_graph_nodes(wire.workflow_graph), self._sensitive)
        fetch = partial(self._context_messages, params.session_id)
        messages = SyncMessages(fetch)
        context = IntegrationRuntimeContext(
            workflow_run_id=wire.workflow_run_id,
            workflow_run=run_view(wire.workflow_run),
            workflow_graph=graph_view(wire.workflow_graph, self._models),
            run_definition=DefinitionView(wire.run_definition or {}),
            user_config=user_config_view(wire.user_config),
            is_realtime=wire.is_realtime,
            context_messages_provider=messages,
        )
        sessions = list(await call_author(factory, context) or [])
        for session in sessions:
            if isinstance(session, IntegrationRuntimeSession):
                session.bind_context_messages(fetch)
        shadow = await _attach_all(sessions)
        self._runs[params.session_id] = sessions
        self._messages[params.session_id] = messages
        if shadow is not None:
            self._shadows[params.session_id] = shadow
        return RuntimeOpenResult(
            sessions=[str(getattr(s, "name", type(s).__name__)) for s in sessions],
            subscriptions=_union_subscriptions(sessions),
            shadow=shadow is not None,
        )

    async def _context_messages(self, session_id: str) -> list[dict[str, Any]]:
        assert self._session is not None
        result: ContextMessagesResult = await self._session.request(
            Method.CONTEXT_MESSAGES,
            ContextMessagesParams(session_id=session_id),
            result_type=ContextMessagesResult,
            timeout=10.0,
        )
        return result.messages

    async def runtime_events(self, params: RuntimeEventsParams) -> None:
        events = params.events
        shadow = self._shadows.get(params.session_id)
        if any(event.kind in SHADOW_EVENT_KINDS for event in events):
            if shadow is not None:
                await shadow.deliver(events)  # in order: notifications run one at a time
            events = [event for event in events if event.kind not in SHADOW_EVENT_KINDS]
        if not events:
            return
        for session in self._runs.get(params.session_id, []):
            try:
                if isinstance(session, IntegrationRuntimeSession):
                    await session.on_events(events)
            except Exception:  # a session's bug must not stop the others or the reader
                self.event_errors += 1
                logger.exception("runtime session %r failed on an event batch", session)

    async def runtime_finish(self, params: RuntimeFinishParams) -> RuntimeFinishResult:
        sessions = self._runs.pop(params.session_id, [])
        messages = self._messages.pop(params.session_id, None)
        shadow = self._shadows.pop(params.session_id, None)
        if shadow is not None:
            await shadow.finish()  # every frame before this request was delivered already
            logger.info("shadow task of %s: %s", params.session_id, shadow.report())
        if messages is not None and sessions:
            await messages.refresh()  # the sync provider answers from this inside the sessions
        merged: dict[str, Any] = {}
        for session in sessions:
            try:
                snapshot = await session.on_call_finished(gathered_context=params.gathered_context)
            except Exception:  # the reference: one failing session is logged, others go on
                logger.exception("runtime session %r failed in on_call_finished", session)
                continue
            if snapshot:
                merged.update(snapshot)
        return RuntimeFinishResult(snapshot=_strict_json(merged, "snapshot") or None)

    # -- completion and routes ------------------------------------------------------------------

    async def completion_run(self, params: CompletionRunParams) -> CompletionRunResult:
        package = self._require_package()
        if package.run_completion is None:
            raise MethodNotFound(f"package {package.name!r} has no completion handler")
        self.redactor.add_from_nodes(params.nodes, self._sensitive)
        wire = params.context
        context = IntegrationCompletionContext(
            wire.workflow_run_id,
            run_view(wire.workflow_run),
            wire.workflow_definition,
            wire.definition_id,
            wire.organization_id,
            wire.public_token,
            idempotency_keys=dict(wire.idempotency_keys),
            attempt=wire.attempt,
        )
        try:
            result = await call_author(package.run_completion, params.nodes, context)
        except DETERMINISTIC_ERRORS as exc:
            raise deterministic_error(exc) from exc
        artifacts = {
            a.name: Artifact(content_type=a.content_type, body=a.body) for a in context.artifacts
        }
        checked = _strict_json(dict(result or {}), "completion result")
        return CompletionRunResult(result=checked, artifacts=artifacts)

    async def http_request(self, params: HttpRequestParams) -> HttpResponseResult:
        routes = self._routes_app()
        if routes is None:
            raise MethodNotFound(f"package {self._require_package().name!r} has no routes")
        return await routes.handle(params)

    async def ping(self, params: PingParams) -> PingResult:
        return PingResult(
            pid=os.getpid(), rss_bytes=_rss_bytes(), uptime_s=time.monotonic() - self._started
        )

    async def shutdown(self, params: ShutdownParams) -> None:
        self.shutdown_requested.set()


def _strict_json(value: dict[str, Any], what: str) -> dict[str, Any]:
    """Refuse NaN, infinities and non-JSON values instead of letting the encoder bend them."""
    try:
        _strict_encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidResult(f"the {what} is not strict JSON: {exc}") from None
    return value


class InvalidResult(InternalError):
    """A plugin's snapshot or result cannot cross the wire as JSON."""


# A handler raising one of these fails the same way on every attempt: the host must not retry.
DETERMINISTIC_ERRORS = (AttributeError, TypeError, ValidationError)


def deterministic_error(exc: BaseException) -> RemoteError:
    """The wire error for a deterministic handler failure: `data.deterministic` is true."""
    data = {"type": type(exc).__name__, "deterministic": True, "traceback": _traceback_text(exc)}
    return RemoteError(f"{type(exc).__name__}: {exc}", data=data)


def _issues(exc: ValidationError) -> list[ValidationIssue]:
    return [
        ValidationIssue(loc=list(error["loc"]), msg=error["msg"], type=error["type"])
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _graph_nodes(graph: dict[str, Any] | None) -> list[dict[str, Any]]:
    nodes = (graph or {}).get("nodes") or []
    values = nodes.values() if isinstance(nodes, dict) else nodes
    return [node for node in values if isinstance(node, dict)]


async def _attach_all(sessions: list[Any]) -> ShadowTask | None:
    """Every session's `attach(task)` with the run's one shadow task; None if nothing attached
    (then pipecat is never imported for it)."""
    shadow = ShadowTask()
    for session in sessions:
        try:
            session.attach(shadow)
        except Exception:  # the reference logs a failing attach; the call goes on
            logger.exception("runtime session %r failed in attach", session)
    if not shadow.active:
        return None
    await shadow.load()
    await shadow.setup()
    return shadow


def _union_subscriptions(sessions: list[Any]) -> list[str] | None:
    kinds: set[str] = set()
    for session in sessions:
        wanted = getattr(session, "subscriptions", None)
        if wanted is None:
            return None
        kinds |= set(wanted)
    return sorted(kinds)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _traceback_text(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc))
