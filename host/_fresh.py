"""Supervisor layer: one call in a fresh fork of the plugin's zygote (`[completion] fresh_process`).

Contract: `call_in_fresh_fork(...)` forks a worker from the plugin's running zygote, greets it
(`initialize` under the start-up deadline), makes the one call under its deadline, then ends the
worker (stdin EOF, then SIGKILL, each bounded) and reaps it, whatever happened: nothing a run
leaves in the plugin's memory reaches the next run. A death during the call is the error
`exit_error` builds from the worker's exit status and stderr tail (`PluginCrashed`, or the
sandbox's `LimitExceeded`). The worker keeps every sandbox property of the zygote it is forked
from (host/_zygote.py).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TypeVar

import anyio

from sdk.protocol import CallMethod, ConnectionClosed, PluginError, RpcSession, SecretScrubber

from ._manifest import Manifest
from ._process import EXIT_GRACE_S, STDERR_DRAIN_S, PluginProcess, handshake
from ._stderr import StderrPump
from ._zygote import Worker, Zygote

P = TypeVar("P")
R = TypeVar("R")
ExitError = Callable[[PluginProcess, str], PluginError]


async def call_in_fresh_fork(
    zygote: Zygote,
    manifest: Manifest,
    method: CallMethod[P, R],
    params: P,
    *,
    timeout: float,
    scrubber: SecretScrubber,
    prepare: Callable[[RpcSession], None],
    exit_error: ExitError,
) -> R:
    """Call `method` in a worker forked for this call only; the worker is gone on return."""
    worker = await zygote.fork()
    failure: PluginError | None = None
    try:
        session = RpcSession(await worker.open_wire(), name=manifest.name)
        prepare(session)  # the plugin -> host requests every process of this plugin serves
        proc = PluginProcess(worker, session, StderrPump(manifest.name, scrubber))
        async with anyio.create_task_group() as readers:
            readers.start_soon(session.run)
            readers.start_soon(proc.stderr.run, worker.stderr)
            readers.start_soon(_reap, proc, worker)
            try:
                result = await _greet_and_call(proc, manifest, method, params, timeout, exit_error)
            except PluginError as exc:  # raised below, outside the group (never wrapped in one)
                failure = exc
            finally:
                with anyio.CancelScope(shield=True):
                    await _end(proc, worker)
                    readers.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await worker.cleanup()
    if failure is not None:
        raise failure
    return result


async def _greet_and_call(
    proc: PluginProcess,
    manifest: Manifest,
    method: CallMethod[P, R],
    params: P,
    timeout: float,
    exit_error: ExitError,
) -> R:
    await handshake(proc, manifest)
    try:
        result: R = await proc.session.request(
            method.name, params, result_type=method.result, timeout=timeout
        )
    except ConnectionClosed:
        await proc.exited_within(STDERR_DRAIN_S + EXIT_GRACE_S)
        raise exit_error(proc, method.name) from None
    return result


async def _reap(proc: PluginProcess, worker: Worker) -> None:
    proc.returncode = await worker.wait()
    proc.exited.set()


async def _end(proc: PluginProcess, worker: Worker) -> None:
    """Stdin EOF (the SDK exits on it), then SIGKILL; bounded either way."""
    await proc.session.aclose()
    if not await proc.exited_within(EXIT_GRACE_S):
        worker.kill_group(signal.SIGKILL)
        await proc.exited_within(EXIT_GRACE_S * 2)
