"""Demo: an offline scripted voice call through a real pipecat pipeline (not part of the host).

Contract: `run_scripted_call(attach=...)` builds `Pipeline([ScriptedCaller, ScriptedLLM,
ScriptedSpeaker])` in a real `PipelineWorker` run by a `WorkerRunner`, lets the caller attach
observers (the bridge) before it starts, plays the script — a greeting, a question answered with a
tool call, an answer the caller interrupts, a goodbye — and hangs up with `EndWorkerFrame`. No
network, no audio device. It returns the LLM context messages (the `gathered_context`). Used by
`plugbox demo`, the end-to-end tests and `bench/live.py`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("LOGURU_LEVEL", "WARNING")  # pipecat logs a banner and DEBUG otherwise

from pipecat.frames import frames as f
from pipecat.metrics.metrics import (
    LLMTokenUsage,
    LLMUsageMetricsData,
    TTFBMetricsData,
    TTSUsageMetricsData,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

PAUSE_S = 0.005  # spacing between scripted moments: keeps turns ordered, the call short


@dataclass(frozen=True)
class Turn:
    caller: str
    answer: Sequence[str]
    tool: str | None = None
    interrupted: bool = False


DEFAULT_SCRIPT: tuple[Turn, ...] = (
    Turn("hello", ["Thank you for calling Acme. ", "How can I help?"]),
    Turn(
        "what's the weather in paris",
        ["It is sunny ", "and 21 degrees in Paris."],
        tool="get_weather",
    ),
    Turn(
        "tell me a long story",
        ["Once upon a time ", "there was ", "a very long story"],
        interrupted=True,
    ),
    Turn("thanks, bye", ["Goodbye!"]),
)


@dataclass
class _Shared:
    bot_stopped: asyncio.Event = field(default_factory=asyncio.Event)
    bot_started: asyncio.Event = field(default_factory=asyncio.Event)


class ScriptedCaller(FrameProcessor):
    """Stands in for the transport and speech-to-text: drives the script turn by turn."""

    def __init__(self, script: Sequence[Turn], shared: _Shared) -> None:
        super().__init__()
        self._script, self._shared = script, shared
        self._task: Any = None

    async def process_frame(self, frame: f.Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, f.StartFrame):
            self._task = self.create_task(self._play())
        elif isinstance(frame, f.EndFrame | f.CancelFrame) and self._task is not None:
            await self.cancel_task(self._task)

    async def _say(self, text: str, *, barge_in: bool) -> None:
        await self.broadcast_frame(f.UserStartedSpeakingFrame)
        if barge_in:
            await self.broadcast_interruption()  # type: ignore[no-untyped-call]
        words = text.split()
        for i in range(1, len(words)):
            await self.push_frame(f.InterimTranscriptionFrame(" ".join(words[:i]), "caller", "t"))
        await self.push_frame(f.TranscriptionFrame(text, "caller", "t", finalized=True))
        await self.broadcast_frame(f.UserStoppedSpeakingFrame)

    async def _play(self) -> None:
        await asyncio.sleep(PAUSE_S)
        for index, turn in enumerate(self._script):
            self._shared.bot_started.clear()
            self._shared.bot_stopped.clear()
            barge_in = index > 0 and self._script[index - 1].interrupted
            await self._say(turn.caller, barge_in=barge_in)
            if turn.interrupted:
                await self._shared.bot_started.wait()
                await asyncio.sleep(PAUSE_S)
                continue  # the next turn barges in while the bot is still speaking
            await self._shared.bot_stopped.wait()
            await asyncio.sleep(PAUSE_S)
        await self.push_frame(f.EndWorkerFrame(reason="caller hung up"), FrameDirection.UPSTREAM)


class ScriptedLLM(FrameProcessor):
    """Stands in for the LLM: answers each final transcript from the script, with metrics."""

    def __init__(self, script: Sequence[Turn]) -> None:
        super().__init__()
        self._answers = {turn.caller: turn for turn in script}
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are Acme's agent."}
        ]

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: f.Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, f.TranscriptionFrame) and frame.text in self._answers:
            await self._answer(self._answers[frame.text])

    async def _answer(self, turn: Turn) -> None:
        self.messages.append({"role": "user", "content": turn.caller})
        await self.push_frame(f.LLMFullResponseStartFrame())
        # Metrics first: the caller barges in only once the bot speaks, so an interruption can
        # never cancel this turn before its metrics are out (one usage frame per turn, always).
        usage = LLMTokenUsage(prompt_tokens=40, completion_tokens=12, total_tokens=52)
        await self.push_frame(
            f.MetricsFrame(
                data=[
                    TTFBMetricsData(processor=self.name, model="scripted-llm", value=0.12),
                    LLMUsageMetricsData(processor=self.name, model="scripted-llm", value=usage),
                ]
            )
        )
        if turn.tool:
            call_id = f"call-{len(self.messages)}"
            await self.push_frame(
                f.FunctionCallsStartedFrame(
                    function_calls=[
                        f.FunctionCallFromLLM(
                            function_name=turn.tool,
                            tool_call_id=call_id,
                            arguments={"city": "paris"},
                            context=None,
                        )
                    ]
                )
            )
            await self.push_frame(
                f.FunctionCallResultFrame(
                    function_name=turn.tool,
                    tool_call_id=call_id,
                    arguments={"city": "paris"},
                    result={"sky": "sunny"},
                )
            )
        for chunk in turn.answer:
            await self.push_frame(f.LLMTextFrame(chunk))
            await asyncio.sleep(PAUSE_S / 5)
        await self.push_frame(f.LLMFullResponseEndFrame())
        self.messages.append({"role": "assistant", "content": "".join(turn.answer)})


class ScriptedSpeaker(FrameProcessor):
    """Stands in for text-to-speech and the output transport: speaks LLM text, can be cut off."""

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self._shared, self._speaking, self._chars = shared, False, 0

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: f.Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, f.InterruptionFrame):
            await self._stopped()
        elif isinstance(frame, f.LLMTextFrame):
            if not self._speaking:
                self._speaking = True
                await self.broadcast_frame(f.BotStartedSpeakingFrame)
                self._shared.bot_started.set()
            self._chars += len(frame.text)
            await self.push_frame(f.TTSTextFrame(frame.text, text_type="sentence"))
            await asyncio.sleep(PAUSE_S)
        elif isinstance(frame, f.LLMFullResponseEndFrame):
            await self._stopped()

    async def _stopped(self) -> None:
        if not self._speaking:
            return
        self._speaking = False
        await self.broadcast_frame(f.BotStoppedSpeakingFrame)
        usage = TTSUsageMetricsData(processor=self.name, model="scripted-tts", value=self._chars)
        await self.push_frame(f.MetricsFrame(data=[usage]))
        self._chars = 0
        self._shared.bot_stopped.set()


async def run_scripted_call(
    attach: Callable[[PipelineWorker], None] | None = None,
    script: Sequence[Turn] = DEFAULT_SCRIPT,
    *,
    turn_tracking: bool = False,
) -> dict[str, Any]:
    """Run one scripted call to its end; returns the gathered context (LLM messages).

    `turn_tracking=True` gives the worker pipecat's `TurnTrackingObserver` (packages read it).
    """
    shared = _Shared()
    llm = ScriptedLLM(script)
    pipeline = Pipeline([ScriptedCaller(script, shared), llm, ScriptedSpeaker(shared)])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
        enable_rtvi=False,
        enable_turn_tracking=turn_tracking,
        idle_timeout_secs=None,
    )
    if attach is not None:
        attach(worker)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    return {"messages": [dict(message) for message in llm.messages]}


class PassThrough(FrameProcessor):
    """A processor that only forwards frames (a stand-in for real pipeline stages)."""

    async def process_frame(self, frame: f.Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


async def run_frame_burst(
    frames: Sequence[f.Frame],
    attach: Callable[[PipelineWorker], None] | None = None,
    *,
    stages: int = 3,
) -> None:
    """Queue `frames` then an `EndFrame` through `stages` pass-through processors (lean worker)."""
    worker = PipelineWorker(
        Pipeline([PassThrough() for _ in range(stages)]),
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
    )
    if attach is not None:
        attach(worker)
    await worker.queue_frames([*frames, f.EndFrame()])
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
