"""The plugin's `completion.run` path, over a real subprocess: the context the handler gets is the
dataclass the contract names, every field set and frozen, however the server builds it; results
strict JSON refuses are refused, and a refusal leaves the next good result unharmed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from sdk import IntegrationCompletionContext
from sdk._contexts import completion_context
from sdk.protocol import (
    CompletionContextWire,
    CompletionRunParams,
    CompletionRunResult,
    InternalError,
    Method,
)
from sdk.testing import run_subprocess

pytestmark = pytest.mark.anyio
PLUGIN_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "context_plugin"
FIELDS = [f.name for f in dataclasses.fields(IntegrationCompletionContext)]


def params(mode: str = "report") -> CompletionRunParams:
    wire = CompletionContextWire(
        workflow_run_id=41,
        workflow_run={"status": "completed", "logs": {"a": 1}},
        workflow_definition={"nodes": [{"id": "n1"}]},
        organization_id=7,
        definition_id=3,
        public_token="tok-1",
        idempotency_keys={"n1": "41:n1"},
        attempt=2,
    )
    return CompletionRunParams([{"id": "n1", "type": "ctxecho", "mode": mode}], wire)


def test_the_fast_constructor_builds_the_dataclass_itself() -> None:
    values: dict[str, Any] = {
        "workflow_run_id": 1,
        "workflow_run": None,
        "workflow_definition": {"a": 1},
        "definition_id": None,
        "organization_id": 2,
        "public_token": "t",
        "idempotency_keys": {"n": "k"},
        "attempt": 3,
        "artifacts": [],
    }
    assert sorted(values) == sorted(FIELDS)  # a new field must be given by the server too
    fast = completion_context(**values)
    assert type(fast) is IntegrationCompletionContext
    assert fast == IntegrationCompletionContext(**values)
    assert repr(fast) == repr(IntegrationCompletionContext(**values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.attempt = 4  # type: ignore[misc]
    fast.publish_artifact("a.txt", b"x", "text/plain")
    assert [a.name for a in fast.artifacts] == ["a.txt"]


async def test_a_handler_sees_every_context_field_frozen() -> None:
    with anyio.fail_after(30):
        async with run_subprocess("ctxecho", plugin_dir=PLUGIN_DIR) as client:
            answer: CompletionRunResult = await client.call(
                Method.COMPLETION_RUN, params(), result_type=CompletionRunResult
            )
    context = answer.result["context"]
    assert context == {
        "type": "IntegrationCompletionContext",
        "fields": FIELDS,
        "missing": [],
        "frozen": True,
        "equals_constructed": True,
        "workflow_run_id": 41,
        "run_status": "completed",
        "run_logs": {"a": 1},
        "workflow_definition": {"nodes": [{"id": "n1"}]},
        "definition_id": 3,
        "organization_id": 7,
        "public_token": "tok-1",
        "idempotency_keys": {"n1": "41:n1"},
        "attempt": 2,
    }
    assert answer.result["nested"] == {"deeper": {"list": [1, 2.5, None, "x"]}}
    assert list(answer.artifacts) == ["report.txt"]
    assert answer.artifacts["report.txt"].body == b"made by ctxecho"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("nan", "Out of range float"),
        ("circular", "Circular reference"),
        ("object", "not JSON serializable"),
    ],
)
async def test_a_result_strict_json_refuses_is_refused_and_the_next_passes(
    mode: str, reason: str
) -> None:
    with anyio.fail_after(30):
        async with run_subprocess("ctxecho", plugin_dir=PLUGIN_DIR) as client:
            for _ in range(2):  # the check is made once per process: a refusal must not stick
                with pytest.raises(InternalError) as refused:
                    await client.call(
                        Method.COMPLETION_RUN, params(mode), result_type=CompletionRunResult
                    )
                assert "is not strict JSON" in refused.value.message
                assert reason in refused.value.message
                good: CompletionRunResult = await client.call(
                    Method.COMPLETION_RUN, params(), result_type=CompletionRunResult
                )
                assert good.result["nested"] == {"deeper": {"list": [1, 2.5, None, "x"]}}
