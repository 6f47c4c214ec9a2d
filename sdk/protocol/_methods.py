"""Wire layer: the method catalogue of protocol v1 and the typed params/results of each method.

Contract: every method name the host or a plugin may send is a constant on `Method`; every
params and result shape is a msgspec Struct defined here, so both peers decode with typed decoders
built once. Values that are free-form JSON (node data, contexts, snapshots) stay `dict[str, Any]`:
their shape is the integrations contract's, not the wire's. `docs/protocol.md` describes the
same shapes without Python; change both together.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

PROTOCOL_VERSION: Final = "1"
SUPPORTED_PROTOCOL_VERSIONS: Final = ("1",)
DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024  # 16 MiB: a snapshot or a report, never a stream
# The host sets this variable; a plugin server refuses to run without it. Not a secret: it only
# stops a plugin from being started by hand, where it would wait forever on a terminal.
PLUGIN_COOKIE_ENV: Final = "PLUGBOX_COOKIE"
PLUGIN_COOKIE_VALUE: Final = "plugbox-plugin-4b1d7e0c9a6f"


class Method:
    """Method names. Host -> plugin first, then plugin -> host, then the cancel notification."""

    INITIALIZE: Final = "initialize"
    SPEC: Final = "spec"
    VALIDATE: Final = "validate"
    RUNTIME_OPEN: Final = "runtime.open"
    RUNTIME_EVENTS: Final = "runtime.events"  # notification
    RUNTIME_FINISH: Final = "runtime.finish"
    COMPLETION_RUN: Final = "completion.run"
    HTTP_REQUEST: Final = "http.request"
    PING: Final = "ping"
    SHUTDOWN: Final = "shutdown"
    # plugin -> host
    CONTEXT_MESSAGES: Final = "context.messages"
    LOG: Final = "log"  # notification
    # either direction
    CANCEL: Final = "$/cancel"  # notification


JSON = dict[str, Any]


class _Wire(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Base of every params/result struct: unknown fields are ignored for forward compatibility."""


# -- initialize ---------------------------------------------------------------------------------


class InitializeParams(_Wire):
    protocol_versions: list[str]
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    host_version: str = ""


class InitializeResult(_Wire):
    protocol_version: str
    sdk_version: str
    package_name: str
    package_version: str
    spec_hash: str
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    pid: int = 0


# -- spec ---------------------------------------------------------------------------------------


class SpecParams(_Wire):
    pass


class NodeTypeInfo(_Wire):
    type_name: str
    spec: JSON  # the contract's NodeSpec wire shape, exactly
    sensitive_fields: list[str] = []
    notes: list[str] = []  # authoring warnings the reference accepts silently (`plugins check`)


class RouteInfo(_Wire):
    path: str  # relative to the package's mount point, e.g. "/stats"
    methods: list[str]
    name: str = ""


class Capabilities(_Wire):
    runtime: bool = False
    completion: bool = False
    routes: bool = False


class SpecResult(_Wire):
    package_name: str
    nodes: list[NodeTypeInfo]
    capabilities: Capabilities
    routes: list[RouteInfo] = []
    openapi: JSON | None = None  # the package routers' OpenAPI fragment (paths + components)
    spec_hash: str = ""


# -- validate -----------------------------------------------------------------------------------


class ValidateItem(_Wire):
    type_name: str
    data: JSON


class ValidationIssue(_Wire):
    loc: list[str | int]
    msg: str
    type: str


class ValidateOutcome(_Wire):
    ok: bool
    data: JSON | None = None  # normalised data when ok
    errors: list[ValidationIssue] = []


class ValidateParams(_Wire):
    items: list[ValidateItem]


class ValidateResult(_Wire):
    results: list[ValidateOutcome]


# -- runtime ------------------------------------------------------------------------------------


class RuntimeContextWire(_Wire):
    """The contract's IntegrationRuntimeContext minus the provider (see `context.messages`)."""

    workflow_run_id: int
    workflow_run: JSON | None = None
    workflow_graph: JSON | None = None
    run_definition: JSON | None = None
    user_config: JSON | None = None
    is_realtime: bool = False


class RuntimeOpenParams(_Wire):
    session_id: str  # chosen by the host, unique per (run, plugin)
    context: RuntimeContextWire


class RuntimeOpenResult(_Wire):
    sessions: list[str]  # names of the plugin-side sessions; empty means "nothing to collect"
    subscriptions: list[str] | None = None  # event kinds wanted; None means every kind
    # True: the sessions attached observers or task handlers to the shadow task, so the host sends
    # the frames the plugin's manifest selects (`pipecat.frame` / `pipecat.task_event` events).
    shadow: bool = False


class LiveEvent(_Wire, array_like=True):
    """One live call event. Array-encoded on the wire: [kind, seq, t_ms, data]."""

    kind: str
    seq: int  # per-run sequence number, strictly increasing
    t_ms: float  # milliseconds since the call started (pipeline clock)
    data: JSON = {}


class RuntimeEventsParams(_Wire):
    session_id: str
    events: list[LiveEvent]
    dropped: int = 0  # events the host dropped for this plugin so far (bounded queue overflow)


class RuntimeFinishParams(_Wire):
    session_id: str
    gathered_context: JSON
    dropped: int = 0


class RuntimeFinishResult(_Wire):
    snapshot: JSON | None = None


class ContextMessagesParams(_Wire):
    session_id: str


class ContextMessagesResult(_Wire):
    messages: list[JSON]


# -- completion ---------------------------------------------------------------------------------


class CompletionContextWire(_Wire):
    """The contract's IntegrationCompletionContext, plus an idempotency key per node id."""

    workflow_run_id: int
    workflow_run: JSON
    workflow_definition: JSON
    organization_id: int
    definition_id: int | None = None
    public_token: str | None = None
    idempotency_keys: dict[str, str] = {}
    attempt: int = 1


class CompletionRunParams(_Wire):
    nodes: list[JSON]
    context: CompletionContextWire


class Artifact(_Wire):
    """A file a completion handler publishes for a run, served by the run's public token."""

    content_type: str
    body: bytes  # base64 in JSON


class CompletionRunResult(_Wire):
    result: JSON
    artifacts: dict[str, Artifact] = {}


# -- http ---------------------------------------------------------------------------------------


class HttpRequestParams(_Wire):
    method: str
    path: str  # relative to the package's mount point
    query_string: str = ""
    headers: list[tuple[str, str]] = []
    body: bytes = b""


class HttpResponseResult(_Wire):
    status: int
    headers: list[tuple[str, str]] = []
    body: bytes = b""


# -- housekeeping -------------------------------------------------------------------------------


class PingParams(_Wire):
    pass


class PingResult(_Wire):
    pid: int
    rss_bytes: int = 0
    uptime_s: float = 0.0


class ShutdownParams(_Wire):
    pass


class CancelParams(_Wire):
    id: int | str


class LogParams(_Wire):
    level: str  # "debug" | "info" | "warning" | "error" | "critical"
    message: str
    logger: str = ""
    fields: JSON = {}
