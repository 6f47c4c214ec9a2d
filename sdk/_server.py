"""Server layer: one plugin package served over a JSON-RPC session (the plugin side of the wire).

Contract: `PluginServer(package).attach(session)` answers every host -> plugin method of protocol v1
(`initialize`, `spec`, `validate`, `runtime.open` / `runtime.events` / `runtime.finish`,
`completion.run`, `http.request`, `ping`, `shutdown`). Author functions that are not coroutines run
in worker threads, so a slow handler never blocks `ping` or other requests. Secrets seen in node
data are registered with the redactor that filters logs and error texts. The live-call methods
are `_live`'s, calling author code and shaping its failures is `_calls`'.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import anyio
from pydantic import ValidationError

from . import _calls
from ._asgi import RoutesApp
from ._build import authoring_notes
from ._calls import DETERMINISTIC_ERRORS, call_author, deterministic_error, validation_issues
from ._calls import traceback_text as _traceback_text
from ._contexts import completion_context
from ._live import LiveCalls
from ._package import IntegrationPackageSpec
from ._version import SDK_VERSION
from ._views import run_view
from .protocol import (
    SUPPORTED_PROTOCOL_VERSIONS,
    Artifact,
    Capabilities,
    CompletionRunParams,
    CompletionRunResult,
    HandshakeError,
    HttpRequestParams,
    HttpResponseResult,
    InitializeParams,
    InitializeResult,
    Method,
    MethodNotFound,
    NodeTypeInfo,
    PingParams,
    PingResult,
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
        self._session: RpcSession | None = None
        self._live = LiveCalls(self.redactor, package)
        self._routes: RoutesApp | None = None
        self._started = time.monotonic()
        nodes = package.nodes if package else ()
        self._sensitive = {node.type_name: node.sensitive_fields for node in nodes}
        self._any_sensitive = any(self._sensitive.values())  # else no node data holds a secret

    @property
    def event_errors(self) -> int:
        """Event batches a runtime session failed on (logged, never fatal)."""
        return self._live.event_errors

    def attach(self, session: RpcSession) -> None:
        self._session = session
        self._live.session = session
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
            return ValidateOutcome(ok=False, errors=validation_issues(exc))
        return ValidateOutcome(ok=True, data=model.model_dump(mode="json"))

    # -- live call ------------------------------------------------------------------------------

    async def runtime_open(self, params: RuntimeOpenParams) -> RuntimeOpenResult:
        return await self._live.open(self._require_package(), params)

    async def runtime_events(self, params: RuntimeEventsParams) -> None:
        await self._live.events(params)

    async def runtime_finish(self, params: RuntimeFinishParams) -> RuntimeFinishResult:
        return await self._live.finish(params)

    # -- completion and routes ------------------------------------------------------------------

    async def completion_run(self, params: CompletionRunParams) -> CompletionRunResult:
        package = self._require_package()
        if package.run_completion is None:
            raise MethodNotFound(f"package {package.name!r} has no completion handler")
        if self._any_sensitive:  # a walk of every node's data per call otherwise
            self.redactor.add_from_nodes(params.nodes, self._sensitive)
        wire = params.context
        context = completion_context(
            workflow_run_id=wire.workflow_run_id,
            workflow_run=run_view(wire.workflow_run),
            workflow_definition=wire.workflow_definition,
            definition_id=wire.definition_id,
            organization_id=wire.organization_id,
            public_token=wire.public_token,
            idempotency_keys=dict(wire.idempotency_keys),
            attempt=wire.attempt,
            artifacts=[],
        )
        try:
            result = await call_author(package.run_completion, params.nodes, context)
        except DETERMINISTIC_ERRORS as exc:
            raise deterministic_error(exc) from exc
        artifacts = {
            a.name: Artifact(content_type=a.content_type, body=a.body) for a in context.artifacts
        }
        checked = _calls.strict_json(dict(result or {}), "completion result")
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


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
