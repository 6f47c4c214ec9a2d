"""Boundary layer: `PluginClient`, the one place host data becomes a plugin's params and a plugin's
answer becomes host data (redaction out; strict JSON, size, depth and secret scrubbing in).

Runtime, completion, the API and the proxy call a plugin through `PluginHost.client(name)` and
nothing below it; a `LiveSession` is bound to the process that opened it.
"""

from ._check import CheckCaller as CheckCaller
from ._client import CompletionAnswer as CompletionAnswer
from ._client import FinishedRun as FinishedRun
from ._client import PluginClient as PluginClient
from ._client import RuntimeContext as RuntimeContext
from ._live import LiveSession as LiveSession
from ._live import MessagesProvider as MessagesProvider
from ._live import UnsendableEvents as UnsendableEvents
from ._redaction import USER_CONFIG_FIELDS as USER_CONFIG_FIELDS
from ._redaction import allowed_config as allowed_config
from ._redaction import learn_secrets as learn_secrets
from ._redaction import redact_for_plugin as redact_for_plugin
from ._results import MAX_RESULT_BYTES as MAX_RESULT_BYTES
from ._results import MAX_RESULT_DEPTH as MAX_RESULT_DEPTH
from ._results import ResultError as ResultError
from ._results import check_result as check_result
from ._results import error_entry as error_entry

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_RESULT_DEPTH",
    "USER_CONFIG_FIELDS",
    "CheckCaller",
    "CompletionAnswer",
    "FinishedRun",
    "LiveSession",
    "MessagesProvider",
    "PluginClient",
    "ResultError",
    "RuntimeContext",
    "UnsendableEvents",
    "allowed_config",
    "check_result",
    "error_entry",
    "learn_secrets",
    "redact_for_plugin",
]
