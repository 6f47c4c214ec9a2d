"""Boundary layer: `PluginClient`, the one place host data meets a plugin.

Contract: one client per plugin (`PluginHost.client(name)`). It is the only code that builds the
params of a host -> plugin method and the only code that turns a plugin's answer into host data:
what it sends is redacted for that plugin (others' secrets and every provider credential masked);
what comes back is checked (strict JSON, size, depth) and scrubbed of the known secrets, and a
plugin error's text is scrubbed before anyone logs or stores it. Methods are typed descriptors
(`sdk.protocol.Calls`), never a method string with an `Any` result. It serves the plugin's
`context.messages` requests from its own open live sessions only, and ends the sessions of a
process when that process ends. Per-plugin checks (ownership, limits, header filtering) belong
here, beside the ones already done.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sdk.protocol import (
    Artifact,
    CallMethod,
    Calls,
    CompletionContextWire,
    CompletionRunParams,
    ConnectionClosed,
    ContextMessagesParams,
    ContextMessagesResult,
    HttpRequestParams,
    HttpResponseResult,
    InvalidParams,
    PluginError,
    RuntimeContextWire,
    RuntimeOpenParams,
    SecretScrubber,
    SpecParams,
    SpecResult,
    ValidateItem,
    ValidateOutcome,
    ValidateParams,
)

from .._keys import InvalidArtifactName, artifact_path
from ._live import LiveSession, MessagesProvider
from ._redaction import redact_for_plugin
from ._results import check_result

if TYPE_CHECKING:
    from .._process import PluginProcess
    from .._registry import Registry
    from .._supervisor import PluginHandle

P = TypeVar("P")
R = TypeVar("R")
_SCRUBBED_DATA = ("traceback", "stderr_tail")  # error data fields that may quote plugin text


class RuntimeContext(Protocol):
    """The contract's runtime context as the host holds it (fields read by the client)."""

    @property
    def workflow_run_id(self) -> int: ...
    @property
    def workflow_run(self) -> dict[str, Any] | None: ...
    @property
    def workflow_graph(self) -> dict[str, Any] | None: ...
    @property
    def run_definition(self) -> dict[str, Any] | None: ...
    @property
    def user_config(self) -> dict[str, Any] | None: ...
    @property
    def is_realtime(self) -> bool: ...
    @property
    def context_messages_provider(self) -> MessagesProvider: ...


class FinishedRun(Protocol):
    """A finished run as the run store gives it (fields read by the client)."""

    @property
    def id(self) -> int: ...
    @property
    def workflow_definition(self) -> dict[str, Any]: ...
    @property
    def organization_id(self) -> int: ...
    @property
    def definition_id(self) -> int | None: ...
    @property
    def public_token(self) -> str | None: ...
    def as_contract_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CompletionAnswer:
    """A completion handler's answer as host data: checked, scrubbed entries and its artifacts
    (plain file names, stored in the plugin's namespace); `refused` names the artifacts whose
    name is not a plain file name, each with the reason."""

    entries: dict[str, Any]
    artifacts: dict[str, Artifact]
    refused: list[tuple[str, str]] = field(default_factory=list)


class PluginClient:
    """One plugin, as runtime, completion, the API and the proxy see it."""

    def __init__(
        self,
        handle: PluginHandle,
        registry: Registry,
        scrubber: SecretScrubber,
        *,
        config_fields: Iterable[str] = (),
    ) -> None:
        self.handle = handle
        self._config_fields = tuple(config_fields)  # the operator's user_config allow-list
        self.name = handle.name
        self._registry = registry
        self.scrubber = scrubber  # the host's: every secret any run or request made known
        self._live: dict[str, LiveSession] = {}
        handle.set_request_handler(Calls.CONTEXT_MESSAGES, self._context_messages)
        handle.on_exit(self._process_ended)

    # -- what is sent ---------------------------------------------------------------------------

    def redact(self, payload: Any) -> Any:
        """`payload` as this plugin may see it: others' secrets masked, user_config allow-listed."""
        info = self._registry.get_package(self.name)
        own_types = info.type_names if info else []
        return redact_for_plugin(
            payload,
            own_types=own_types,
            sensitive=self._registry.sensitive_fields,
            config_fields=self._config_fields,
        )

    async def request(
        self,
        method: CallMethod[P, R],
        params: P,
        *,
        timeout: float | None = None,
        process: PluginProcess | None = None,
        secrets: SecretScrubber | None = None,
    ) -> R:
        """The one call path: a plugin error leaves here with its texts scrubbed."""
        try:
            return await self.handle.call(method, params, timeout=timeout, process=process)
        except PluginError as exc:
            _scrub_error(exc, secrets or self.scrubber)
            raise

    # -- registry -------------------------------------------------------------------------------

    async def spec(self) -> SpecResult:
        return await self.request(Calls.SPEC, SpecParams())

    async def validate(self, items: list[ValidateItem]) -> list[ValidateOutcome]:
        """Validate node data of this plugin's types (its own data: nothing to redact)."""
        result = await self.request(Calls.VALIDATE, ValidateParams(items=items))
        return result.results

    # -- live calls -----------------------------------------------------------------------------

    async def open_live(
        self, context: RuntimeContext, *, secrets: SecretScrubber
    ) -> LiveSession | None:
        """Open this plugin's session for a run; None when it has nothing to collect."""
        session_id = f"{context.workflow_run_id}-{self.name}-{uuid.uuid4().hex[:8]}"
        wire = self._context_for_plugin(context)
        await self.handle.start()  # the session binds to the process that answers the open
        process = self.handle.process
        assert process is not None
        session = LiveSession(
            self,
            session_id,
            process,
            subscriptions=None,
            provider=context.context_messages_provider,
            secrets=secrets,
        )
        self._live[session_id] = session  # before the open: its handler may ask for messages
        try:
            opened = await self.request(
                Calls.RUNTIME_OPEN,
                RuntimeOpenParams(session_id, wire),
                process=process,
                secrets=secrets,
            )
        except PluginError:
            session.close()
            raise
        if not opened.sessions:
            session.close()
            return None
        if opened.subscriptions is not None:
            session.subscriptions = frozenset(opened.subscriptions)
        session.shadow = opened.shadow
        return session

    def forget(self, session_id: str) -> None:
        self._live.pop(session_id, None)

    def _context_for_plugin(self, context: RuntimeContext) -> RuntimeContextWire:
        """The run's context as this plugin may see it: redacted, provider credentials masked."""
        return RuntimeContextWire(
            workflow_run_id=context.workflow_run_id,
            workflow_run=self.redact(context.workflow_run),
            workflow_graph=self.redact(context.workflow_graph),
            run_definition=self.redact(context.run_definition),
            user_config=self._masked_user_config(context.user_config),
            is_realtime=context.is_realtime,
        )

    def _masked_user_config(self, config: dict[str, Any] | None) -> dict[str, Any] | None:
        """Provider credentials masked: wrapped so the redactor sees a `user_config` key."""
        if config is None:
            return None
        masked: dict[str, Any] = self.redact({"user_config": config})["user_config"]
        return masked

    async def _context_messages(self, params: ContextMessagesParams) -> ContextMessagesResult:
        """`context.messages` from this plugin: answered only for its own open sessions."""
        session = self._live.get(params.session_id)
        if session is None:
            raise InvalidParams(f"no open live session {params.session_id!r}")
        return ContextMessagesResult(messages=[dict(m) for m in session.provider()])

    def _process_ended(self, process: PluginProcess, error: PluginError | None) -> None:
        for session in [s for s in self._live.values() if s.process is process]:
            session.end(error or _stopped(self.name))

    # -- completion -----------------------------------------------------------------------------

    async def run_completion(
        self,
        run: FinishedRun,
        nodes: list[dict[str, Any]],
        *,
        idempotency_keys: Mapping[str, str],
        attempt: int,
        secrets: SecretScrubber,
    ) -> CompletionAnswer:
        """One `completion.run` with a context redacted for this plugin; the answer checked."""
        context = CompletionContextWire(
            workflow_run_id=run.id,
            workflow_run=self.redact(run.as_contract_dict()),
            workflow_definition=self.redact(run.workflow_definition),
            organization_id=run.organization_id,
            definition_id=run.definition_id,
            public_token=run.public_token,
            idempotency_keys=dict(idempotency_keys),
            attempt=attempt,
        )
        params = CompletionRunParams(nodes=nodes, context=context)
        result = await self.request(Calls.COMPLETION_RUN, params, secrets=secrets)
        entries = secrets.scrub(check_result(self.name, result.result))
        artifacts: dict[str, Artifact] = {}
        refused: list[tuple[str, str]] = []
        for name, artifact in result.artifacts.items():
            try:  # the host's check, whatever the plugin's SDK did; the store checks again
                artifact_path(self.name, name)
            except InvalidArtifactName as exc:
                refused.append((f"artifact:{secrets.scrub_text(name)}", str(exc)))
                continue
            artifacts[name] = artifact
        return CompletionAnswer(entries, artifacts, refused)

    # -- routes ---------------------------------------------------------------------------------

    async def http(
        self,
        method: str,
        path: str,
        *,
        query_string: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float | None = None,
    ) -> HttpResponseResult:
        """A proxied HTTP request (already held to the API's limits by the proxy)."""
        params = HttpRequestParams(method, path, query_string, headers, body)
        return await self.request(Calls.HTTP_REQUEST, params, timeout=timeout)


def _stopped(plugin: str) -> ConnectionClosed:
    return ConnectionClosed("the plugin process holding this live session stopped", plugin=plugin)


def _scrub_error(error: PluginError, scrubber: SecretScrubber) -> None:
    """Scrub an error's message and the plugin texts it quotes of known secrets, in place."""
    error.message = scrubber.scrub_text(error.message)
    error.args = (error.message,)
    for key in _SCRUBBED_DATA:
        value = error.data.get(key)
        if isinstance(value, str):
            error.data[key] = scrubber.scrub_text(value)
