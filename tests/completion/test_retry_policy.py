"""What a failed completion attempt means for the next: deterministic errors are not retried, an
open circuit's wait is read from the error the supervisor raises."""

from __future__ import annotations

from host.completion._retry import circuit_wait, is_deterministic
from sdk.protocol import CircuitOpen, InternalError, MethodNotFound, PluginCrashed, RemoteError


def test_deterministic_errors_are_the_wire_s_and_the_plugin_s_own_marks() -> None:
    assert is_deterministic(MethodNotFound("no such method"))
    assert is_deterministic(RemoteError("bad config", data={"deterministic": True}))
    assert is_deterministic(RemoteError("no", data={"fields": {"retryable": False}}))
    assert not is_deterministic(RemoteError("CRM answered 503"))
    assert not is_deterministic(PluginCrashed("exited with code 11"))
    assert not is_deterministic(InternalError("a bug on the other side may pass"))


def test_the_circuit_wait_comes_from_the_error_data_or_its_message() -> None:
    assert circuit_wait(CircuitOpen("open", data={"retry_after_s": 12.5})) == 12.55
    assert circuit_wait(CircuitOpen("circuit open; next try in 3.2 s (last error: x)")) == 3.25
