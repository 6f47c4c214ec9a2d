"""Completion layer: `run_integrations(run_id)`, the contract's post-call orchestration.

Contract (the five steps): load the pinned definition from the run; create a public token only if
post-call work exists; run the QA phase, then integrations, then webhooks (phases from each
plugin's manifest), each phase seeing the annotations written so far; each handler gets only its
own node types' node dicts (disabled ones included: which nodes are enabled is the plugin's
business) and a completion context redacted for it. Plugins are resolved again for every job; a
plugin that failed to load fails its nodes with the cause (retryable, never skipped). A plugin
is called only when it has a node without a recorded result; a crash, kill or timeout is retried
with jittered exponential backoff up to the plugin's limit (an open circuit is not counted: it
defers a worker's job, which gives its slot back, or is waited out within the deadline; a
deterministic error, `data.deterministic` from the plugin, is not retried), then recorded as the
reference's `integration_<plugin>` failure entry plus a failed result for each of its nodes.
Results are recorded once per (run, node, attempt group), so retries and duplicate jobs deliver
nothing twice; handlers get a stable idempotency key per (run, node, attempt group). Each call
and the recording of its result happen inside the worker's delivery gate (`_gate`).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from sdk.protocol import CircuitOpen, PluginError, SecretScrubber, iter_nodes

from .._counters import COUNTERS, DELIVERIES
from .._keys import HOST_WRITER, KeyRule
from .._manifest import PHASE_ORDER, Manifest
from ..client import CompletionAnswer, ResultError
from ..store import RunStore, WorkflowRun
from ._gate import DeliveryGate
from ._resolve import Resolution, resolve
from ._retry import CIRCUIT_WAIT_S, PluginLoadFailed, circuit_wait, is_deterministic

if TYPE_CHECKING:
    from .._host import PluginHost

logger = logging.getLogger("plugbox.completion")
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class PluginOutcome:
    plugin: str
    phase: str
    status: str  # "done" | "failed" | "skipped" | "deferred"
    attempts: int = 0
    nodes: list[str] = field(default_factory=list)
    error: str | None = None
    refused_keys: list[tuple[str, str]] = field(default_factory=list)
    retry_after_s: float | None = None  # "deferred": its circuit is open this long


@dataclass
class CompletionReport:
    run_id: int
    public_token: str | None
    outcomes: list[PluginOutcome] = field(default_factory=list)
    deferred_s: float | None = None  # the job stopped at a phase with an open circuit: retry then


def idempotency_key(run_id: int, node_id: str, attempt_group: int = 0) -> str:
    """Stable per (run, node, attempt group): the same value on every retry and every duplicate
    job of one group; `runs retry` opens a new group, hence a new key."""
    group = f":{attempt_group}" if attempt_group else ""  # group 0 keeps the original key
    return hashlib.sha256(f"plugbox:{run_id}:{node_id}{group}".encode()).hexdigest()[:32]


async def run_integrations(
    run_id: int,
    *,
    plugins: PluginHost,
    store: RunStore,
    sleep: Sleep = anyio.sleep,
    deadline: float | None = None,
    gate: DeliveryGate | None = None,
    defer: bool = False,
) -> CompletionReport:
    """Run every phase's completion handlers for one finished run.

    `deadline` (anyio's clock) bounds the waits for an open circuit; default: `CIRCUIT_WAIT_S`.
    `gate`: the worker's delivery gate (`_gate`); default: one for this call alone. `defer`: a
    plugin whose circuit is open is not waited for; the phase's other plugins finish, later
    phases do not start, and `deferred_s` says when to run the job again (its worker slot is
    free meanwhile).
    """
    gate = gate if gate is not None else DeliveryGate()
    run = await store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id}")
    resolution = await resolve(run, plugins)  # per job: a plugin that failed to load is retried
    if resolution.unattributed:
        _warn_unattributed(run_id, resolution, plugins)
    if not resolution.work and not resolution.unloaded:
        return CompletionReport(run_id, None)
    report = CompletionReport(run_id, await store.ensure_public_token(run_id))
    secrets = plugins.learn_secrets(definitions=(run.workflow_definition,))
    until = deadline if deadline is not None else anyio.current_time() + CIRCUIT_WAIT_S
    try:  # the host knows the run's secrets while its job runs, never longer
        await _run_phases(
            report, run, resolution, plugins, store, secrets, sleep, until, gate, defer
        )
    finally:
        plugins.forget_secrets(secrets)
    return report


def _warn_unattributed(run_id: int, resolution: Resolution, plugins: PluginHost) -> None:
    """Nodes of types no loaded plugin provides are treated as core nodes (no completion work);
    the warning names the plugins that failed to load, since one of them may own those types."""
    logger.warning(
        "run %d: nodes %s have types no loaded plugin provides (plugins that failed to load: %s)",
        run_id,
        resolution.unattributed,
        [error.name for error in plugins.registry.errors],
    )


async def _run_phases(
    report: CompletionReport,
    run: WorkflowRun,
    resolution: Resolution,
    plugins: PluginHost,
    store: RunStore,
    secrets: SecretScrubber,
    sleep: Sleep,
    until: float,
    gate: DeliveryGate,
    defer: bool,
) -> None:
    run_id, work, unloaded = run.id, resolution.work, resolution.unloaded
    for name, (nodes, message) in sorted(unloaded.items()):
        job = _PluginJob(plugins, store, secrets, run, name, nodes, sleep, until, gate, defer)
        await job.fail_unloaded(message, report)
    for phase in PHASE_ORDER:
        names = [name for name in sorted(work) if plugins.manifests[name].completion.phase == phase]
        if not names:
            continue
        current = await store.get_run(run_id)  # each phase sees the annotations so far
        assert current is not None
        async with anyio.create_task_group() as group:
            for name in names:
                job = _PluginJob(
                    plugins, store, secrets, current, name, work[name], sleep, until, gate, defer
                )
                group.start_soon(job.execute, report)
        waits = [o.retry_after_s for o in report.outcomes if o.retry_after_s is not None]
        if waits:  # later phases need this one's annotations: the whole job waits
            report.deferred_s = max(waits)
            logger.info("run %d: deferred %.1f s (open circuit)", run_id, report.deferred_s)
            break


@dataclass
class _PluginJob:
    plugins: PluginHost
    store: RunStore
    secrets: SecretScrubber  # the run's, learnt once
    workflow_run: WorkflowRun
    name: str
    nodes: list[dict[str, Any]]
    sleep: Sleep
    deadline: float  # anyio clock: waits for an open circuit end here
    gate: DeliveryGate  # held from a call's start until its result is recorded
    defer: bool  # an open circuit defers the job instead of being waited out here
    groups: dict[str, int] = field(default_factory=dict)  # node id -> its attempt group

    @property
    def manifest(self) -> Manifest:
        return self.plugins.manifests[self.name]

    async def _pending(self, outcome: PluginOutcome) -> list[dict[str, Any]]:
        recorded = await self.store.recorded_nodes(self.workflow_run.id)
        pending = [n for n in self.nodes if str(n.get("id")) not in recorded]
        outcome.nodes = [str(n.get("id")) for n in pending]
        return pending

    async def fail_unloaded(self, message: str, report: CompletionReport) -> None:
        """The plugin could not be loaded: its nodes fail with the cause, retryable."""
        outcome = PluginOutcome(self.name, self.manifest.completion.phase, "skipped")
        report.outcomes.append(outcome)
        if pending := await self._pending(outcome):
            error = PluginLoadFailed(f"plugin could not be loaded: {message}", plugin=self.name)
            await self._record_failure(error, pending, outcome)
            COUNTERS.inc(DELIVERIES, len(pending), plugin=self.name, outcome=outcome.status)

    async def execute(self, report: CompletionReport) -> None:
        outcome = PluginOutcome(self.name, self.manifest.completion.phase, "skipped")
        report.outcomes.append(outcome)
        pending = await self._pending(outcome)
        if not pending:
            return
        self.groups = await self.store.attempt_groups(self.workflow_run.id)
        try:
            await self._deliver(pending, outcome)
        except (PluginError, ResultError) as exc:
            await self._record_failure(exc, pending, outcome)
        if outcome.status == "deferred":
            return
        COUNTERS.inc(DELIVERIES, len(pending), plugin=self.name, outcome=outcome.status)

    async def _deliver(self, nodes: list[dict[str, Any]], outcome: PluginOutcome) -> None:
        """Call the plugin (retrying) and record its result, the call and the recording inside
        the delivery gate; raises the last error when no attempt succeeded."""
        policy = self.manifest.completion
        attempt = 1
        while True:
            try:
                await self.plugins.get(self.name).start()  # a (re)start is not a delivery
                async with self.gate.delivering():
                    answer = await self._call(nodes, attempt)
                    outcome.attempts = attempt
                    with anyio.CancelScope(shield=True):  # it was delivered: record it
                        await self._record_success(answer, nodes, outcome)
                return
            except ResultError as exc:
                exc.data["attempts"] = attempt  # an unstorable answer is not retried
                raise
            except CircuitOpen as exc:
                # Not an attempt: defer the job, or wait the circuit out (within the deadline).
                wait = circuit_wait(exc)
                if self.defer:
                    outcome.status, outcome.retry_after_s = "deferred", wait
                    return
                if anyio.current_time() + wait > self.deadline:
                    exc.data["attempts"] = attempt
                    raise
                logger.warning("plugin %r: circuit open; waiting %.1f s", self.name, wait)
                await self.sleep(wait)
            except PluginError as exc:
                exc.data["attempts"] = attempt
                logger.warning(
                    "plugin %r completion attempt %d failed: %s", self.name, attempt, exc
                )
                if attempt >= policy.max_attempts or is_deterministic(exc):
                    raise  # a deterministic error fails the same way on every attempt
                ceiling = policy.backoff_s * 2 ** (attempt - 1)
                await self.sleep(random.uniform(ceiling / 2, ceiling))
                attempt += 1

    async def _call(self, nodes: list[dict[str, Any]], attempt: int) -> CompletionAnswer:
        run = self.workflow_run
        keys = {
            str(n.get("id")): idempotency_key(
                run.id, str(n.get("id")), self.groups.get(str(n.get("id")), 0)
            )
            for n in nodes
        }
        return await self.plugins.client(self.name).run_completion(
            run, nodes, idempotency_keys=keys, attempt=attempt, secrets=self.secrets
        )

    def _key_rule(self) -> KeyRule:
        """Its own nodes' ids and its prefix; never another plugin's node id (`_keys.py`)."""
        registry = self.plugins.registry
        mine: set[str] = set()
        others: set[str] = set()
        for node in iter_nodes(self.workflow_run.workflow_definition):
            owner = registry.package_for_type(str(node.get("type")))
            (mine if owner == self.name else others).add(str(node.get("id")))
        plugins = [info.name for info in registry.packages()]
        return KeyRule.build(self.name, exact=mine, foreign=others, plugins=plugins)

    async def _record_success(
        self, answer: CompletionAnswer, pending: list[dict[str, Any]], outcome: PluginOutcome
    ) -> None:
        rule = self._key_rule()
        entries, not_mine = rule.split(answer.entries)
        for name, artifact in answer.artifacts.items():
            # In the plugin's own namespace (`<plugin>/<name>`): it can replace only its own.
            await self.store.put_artifact(
                self.workflow_run.id, self.name, name, artifact.content_type, artifact.body
            )
        merged = await self.store.merge_annotations(self.workflow_run.id, entries, writer=self.name)
        merged.refused.extend((key, "not this plugin's key") for key in not_mine)
        merged.refused.extend(answer.refused)
        outcome.refused_keys = merged.refused
        if merged.refused:
            logger.warning(
                "plugin %r tried to overwrite keys it does not own: %s", self.name, merged.refused
            )
            await self.store.merge_annotations(
                self.workflow_run.id,
                {
                    f"integration_{self.name}_refused": [
                        {"key": k, "owner": o} for k, o in merged.refused
                    ]
                },
                writer=HOST_WRITER,
            )
        for node in pending:
            await self.store.record_node_result(
                self.workflow_run.id,
                str(node.get("id")),
                plugin=self.name,
                status="done",
                attempts=outcome.attempts,
            )
        outcome.status = "done"

    async def _record_failure(
        self,
        error: PluginError | ResultError,
        pending: list[dict[str, Any]],
        outcome: PluginOutcome,
    ) -> None:
        attempts = int(error.data.get("attempts", outcome.attempts))
        message = self.secrets.scrub_text(str(error))
        described: dict[str, Any] = {"type": type(error).__name__, "message": message}
        # The plugin's own traceback (sent in the error's data) is kept with the node's result.
        remote = error.data.get("traceback") if isinstance(error.data, dict) else None
        if remote:
            described["traceback"] = self.secrets.scrub_text(str(remote))
        failures: dict[str, Any] = {
            f"integration_{self.name}": {"error": "completion_handler_failed"},  # the reference's
        }
        failures |= {
            str(node.get("id")): {
                "node_id": str(node.get("id")),
                "plugin": self.name,
                "status": "failed",
                "error": described,
                "attempts": attempts,
            }
            for node in pending
        }
        await self.store.merge_annotations(self.workflow_run.id, failures, writer=HOST_WRITER)
        for node_id in (str(node.get("id")) for node in pending):
            await self.store.record_node_result(
                self.workflow_run.id,
                node_id,
                plugin=self.name,
                status="failed",
                attempts=attempts,
                error=f"{type(error).__name__}: {message}",
            )
        outcome.status, outcome.attempts, outcome.error = "failed", attempts, message
