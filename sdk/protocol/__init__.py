"""Wire layer of plugbox: JSON-RPC 2.0 over newline-delimited JSON, shared by host and plugins.

Imports only msgspec, anyio and the standard library. The host imports this package and nothing
else of the SDK; `docs/protocol.md` specifies the same wire without Python.
"""

from ._catalogue import CallMethod as CallMethod
from ._catalogue import Calls as Calls
from ._catalogue import Notifications as Notifications
from ._catalogue import NotifyMethod as NotifyMethod
from ._errors import CircuitOpen as CircuitOpen
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import FrameTooLarge as FrameTooLarge
from ._errors import HandshakeError as HandshakeError
from ._errors import InternalError as InternalError
from ._errors import InvalidParams as InvalidParams
from ._errors import InvalidRequest as InvalidRequest
from ._errors import LimitExceeded as LimitExceeded
from ._errors import MethodNotFound as MethodNotFound
from ._errors import ParseError as ParseError
from ._errors import PluginCancelled as PluginCancelled
from ._errors import PluginCrashed as PluginCrashed
from ._errors import PluginError as PluginError
from ._errors import PluginTimeout as PluginTimeout
from ._errors import RemoteError as RemoteError
from ._errors import SandboxError as SandboxError
from ._errors import WireError as WireError
from ._errors import error_from_wire as error_from_wire
from ._errors import error_to_wire as error_to_wire
from ._events import ALL_EVENT_KINDS as ALL_EVENT_KINDS
from ._events import SHADOW_EVENT_KINDS as SHADOW_EVENT_KINDS
from ._events import EventKind as EventKind
from ._frames import FrameWire as FrameWire
from ._framing import ErrorResponse as ErrorResponse
from ._framing import Message as Message
from ._framing import MessageDecoder as MessageDecoder
from ._framing import Notification as Notification
from ._framing import ParseFailure as ParseFailure
from ._framing import Request as Request
from ._framing import RequestId as RequestId
from ._framing import SuccessResponse as SuccessResponse
from ._framing import decode_frame as decode_frame
from ._framing import encode_message as encode_message
from ._methods import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from ._methods import PLUGIN_COOKIE_ENV as PLUGIN_COOKIE_ENV
from ._methods import PLUGIN_COOKIE_VALUE as PLUGIN_COOKIE_VALUE
from ._methods import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._methods import SUPPORTED_PROTOCOL_VERSIONS as SUPPORTED_PROTOCOL_VERSIONS
from ._methods import Artifact as Artifact
from ._methods import CancelParams as CancelParams
from ._methods import Capabilities as Capabilities
from ._methods import CompletionContextWire as CompletionContextWire
from ._methods import CompletionRunParams as CompletionRunParams
from ._methods import CompletionRunResult as CompletionRunResult
from ._methods import ContextMessagesParams as ContextMessagesParams
from ._methods import ContextMessagesResult as ContextMessagesResult
from ._methods import HttpRequestParams as HttpRequestParams
from ._methods import HttpResponseResult as HttpResponseResult
from ._methods import InitializeParams as InitializeParams
from ._methods import InitializeResult as InitializeResult
from ._methods import LiveEvent as LiveEvent
from ._methods import LogParams as LogParams
from ._methods import Method as Method
from ._methods import NodeTypeInfo as NodeTypeInfo
from ._methods import PingParams as PingParams
from ._methods import PingResult as PingResult
from ._methods import RouteInfo as RouteInfo
from ._methods import RuntimeContextWire as RuntimeContextWire
from ._methods import RuntimeEventsParams as RuntimeEventsParams
from ._methods import RuntimeFinishParams as RuntimeFinishParams
from ._methods import RuntimeFinishResult as RuntimeFinishResult
from ._methods import RuntimeOpenParams as RuntimeOpenParams
from ._methods import RuntimeOpenResult as RuntimeOpenResult
from ._methods import ShutdownParams as ShutdownParams
from ._methods import SpecParams as SpecParams
from ._methods import SpecResult as SpecResult
from ._methods import ValidateItem as ValidateItem
from ._methods import ValidateOutcome as ValidateOutcome
from ._methods import ValidateParams as ValidateParams
from ._methods import ValidateResult as ValidateResult
from ._methods import ValidationIssue as ValidationIssue
from ._pipe import PipeMessageStream as PipeMessageStream
from ._pipe import open_pipe_stream as open_pipe_stream
from ._routes import Handler as Handler
from ._routes import typed_decoder as typed_decoder
from ._secrets import CREDENTIAL_KEY as CREDENTIAL_KEY
from ._secrets import MASK_CHAR as MASK_CHAR
from ._secrets import MAX_DEPTH as MAX_DEPTH
from ._secrets import TOO_DEEP as TOO_DEEP
from ._secrets import ScrubbingFilter as ScrubbingFilter
from ._secrets import SecretScrubber as SecretScrubber
from ._secrets import SensitiveLookup as SensitiveLookup
from ._secrets import credential_secrets as credential_secrets
from ._secrets import iter_nodes as iter_nodes
from ._secrets import mask as mask
from ._secrets import mask_value as mask_value
from ._secrets import node_data as node_data
from ._secrets import node_secrets as node_secrets
from ._secrets import strings_in as strings_in
from ._session import RpcSession as RpcSession
from ._streams import AsyncioReceiveStream as AsyncioReceiveStream
from ._streams import AsyncioSendStream as AsyncioSendStream
from ._streams import ByteMessageStream as ByteMessageStream
from ._streams import MessageStream as MessageStream
from ._streams import memory_message_pair as memory_message_pair

__all__ = [
    "ALL_EVENT_KINDS",
    "CREDENTIAL_KEY",
    "DEFAULT_MAX_FRAME_SIZE",
    "MASK_CHAR",
    "MAX_DEPTH",
    "PLUGIN_COOKIE_ENV",
    "PLUGIN_COOKIE_VALUE",
    "PROTOCOL_VERSION",
    "SHADOW_EVENT_KINDS",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "TOO_DEEP",
    "Artifact",
    "AsyncioReceiveStream",
    "AsyncioSendStream",
    "ByteMessageStream",
    "CallMethod",
    "Calls",
    "CancelParams",
    "Capabilities",
    "CircuitOpen",
    "CompletionContextWire",
    "CompletionRunParams",
    "CompletionRunResult",
    "ConnectionClosed",
    "ContextMessagesParams",
    "ContextMessagesResult",
    "ErrorResponse",
    "EventKind",
    "FrameTooLarge",
    "FrameWire",
    "Handler",
    "HandshakeError",
    "HttpRequestParams",
    "HttpResponseResult",
    "InitializeParams",
    "InitializeResult",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "LimitExceeded",
    "LiveEvent",
    "LogParams",
    "Message",
    "MessageDecoder",
    "MessageStream",
    "Method",
    "MethodNotFound",
    "NodeTypeInfo",
    "Notification",
    "Notifications",
    "NotifyMethod",
    "ParseError",
    "ParseFailure",
    "PingParams",
    "PingResult",
    "PipeMessageStream",
    "PluginCancelled",
    "PluginCrashed",
    "PluginError",
    "PluginTimeout",
    "RemoteError",
    "Request",
    "RequestId",
    "RouteInfo",
    "RpcSession",
    "RuntimeContextWire",
    "RuntimeEventsParams",
    "RuntimeFinishParams",
    "RuntimeFinishResult",
    "RuntimeOpenParams",
    "RuntimeOpenResult",
    "SandboxError",
    "ScrubbingFilter",
    "SecretScrubber",
    "SensitiveLookup",
    "ShutdownParams",
    "SpecParams",
    "SpecResult",
    "SuccessResponse",
    "ValidateItem",
    "ValidateOutcome",
    "ValidateParams",
    "ValidateResult",
    "ValidationIssue",
    "WireError",
    "credential_secrets",
    "decode_frame",
    "encode_message",
    "error_from_wire",
    "error_to_wire",
    "iter_nodes",
    "mask",
    "mask_value",
    "memory_message_pair",
    "node_data",
    "node_secrets",
    "open_pipe_stream",
    "strings_in",
    "typed_decoder",
]
