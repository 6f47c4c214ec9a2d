"""Live call layer: pipecat frames as shadow-task payloads, and which plugin gets which frame.

Contract: `encode_frame(pushed, audio=...)` turns one `FramePushed` into the `pipecat.frame`
payload that `sdk/protocol/_frames.py` documents: class and module, ids, processor names, direction,
pipeline timestamp and the frame's dataclass fields that JSON can carry (nested dataclasses,
pydantic models and enums tagged so the plugin can rebuild them; processors as their names; bytes
only for audio frames sent on request; anything else left out). It reads by attribute and imports
no pipecat. `FrameFilter` is one plugin's `[shadow]` manifest section: which classes it wants (by
name along the class's MRO) and its audio byte budget for the call. Both run inside pipecat's
observer task, so they never await; a class's plan (its fields, whether it is audio) is cached.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import inspect
from types import SimpleNamespace
from typing import Any

from sdk.protocol import FrameWire as fw

_SKIP = object()  # a value JSON cannot carry: the field is left out
# Base `Frame` fields sent at the top level (id, name, sibling) or meaningless in another process.
_FRAME_INTERNALS = frozenset(
    {"id", "name", "broadcast_sibling_id", "transport_source", "transport_destination"}
)
_plans: dict[type, tuple[tuple[str, ...], bool]] = {}


def base_names(cls: type) -> frozenset[str]:
    return frozenset(base.__name__ for base in cls.__mro__)


def plan(cls: type) -> tuple[tuple[str, ...], bool]:
    """(the fields to send, whether the class is an audio frame), cached per class."""
    found = _plans.get(cls)
    if found is None:
        names = tuple(
            field.name
            for field in (dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ())
            if field.name not in _FRAME_INTERNALS
            # a field shadowed by a property is deprecated for reading (StartFrame's config)
            and not isinstance(inspect.getattr_static(cls, field.name, None), property)
        )
        found = _plans[cls] = (names, bool(base_names(cls) & fw.AUDIO_BASES))
    return found


def encode_frame(pushed: Any, *, audio: bool = False) -> tuple[dict[str, Any], int]:
    """The payload of one pushed frame and the number of raw bytes it carries (audio only)."""
    frame = pushed.frame
    cls = type(frame)
    names, is_audio = plan(cls)
    carried = [0]
    keep_bytes = audio and is_audio
    fields: dict[str, Any] = {}
    stored = frame.__dict__  # not getattr: StartFrame warns on reads of its deprecated fields
    for name in names:
        value = _value(stored.get(name, _SKIP), keep_bytes, carried, 0)
        if value is not _SKIP:
            fields[name] = value
    payload = {
        fw.CLS: cls.__qualname__,
        fw.MODULE: cls.__module__,
        fw.ID: frame.id,
        fw.NAME: frame.name,
        fw.SIBLING: frame.broadcast_sibling_id,
        fw.SRC: _processor_name(pushed.source),
        fw.DST: _processor_name(pushed.destination),
        fw.DIR: int(getattr(pushed.direction, "value", pushed.direction)),
        fw.TS: int(pushed.timestamp),
        fw.FIELDS: fields,
    }
    return payload, carried[0]


def encode_lone_frame(frame: Any) -> dict[str, Any] | None:
    """A frame handed to a task event (`on_pipeline_finished(task, frame)`): no push around it."""
    if frame is None:
        return None
    lone = SimpleNamespace(frame=frame, source=None, destination=None, direction=1, timestamp=0)
    payload, _ = encode_frame(lone)
    return payload


def _processor_name(processor: Any) -> str | None:
    return None if processor is None else str(getattr(processor, "name", processor))


def _value(value: Any, keep_bytes: bool, carried: list[int], depth: int) -> Any:
    if value is _SKIP:
        return _SKIP
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= fw.MAX_VALUE_DEPTH:
        return _SKIP
    if isinstance(value, enum.Enum):
        cls = type(value)
        inner = _value(value.value, False, carried, depth + 1)
        return {fw.TAG: fw.ENUM, "cls": cls.__qualname__, "module": cls.__module__, "v": inner}
    if isinstance(value, list | tuple):
        items = [_value(item, keep_bytes, carried, depth + 1) for item in value]
        return [item for item in items if item is not _SKIP]
    if isinstance(value, dict):
        return _mapping(value, keep_bytes, carried, depth)
    if isinstance(value, bytes | bytearray | memoryview):
        if not keep_bytes:
            return _SKIP
        raw = bytes(value)
        carried[0] += len(raw)
        return {fw.TAG: fw.BYTES, "b64": base64.b64encode(raw).decode("ascii")}
    if "FrameProcessor" in base_names(type(value)):
        return {fw.TAG: fw.PROCESSOR, "name": _processor_name(value)}
    names = _object_fields(value)
    if names is None:
        return _SKIP
    fields = {}
    for name in names:
        inner = _value(getattr(value, name, None), keep_bytes, carried, depth + 1)
        if inner is not _SKIP:
            fields[name] = inner
    cls = type(value)
    return {fw.TAG: fw.OBJECT, "cls": cls.__qualname__, "module": cls.__module__, "f": fields}


def _mapping(value: dict[Any, Any], keep_bytes: bool, carried: list[int], depth: int) -> Any:
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            return _SKIP
        inner = _value(item, keep_bytes, carried, depth + 1)
        if inner is not _SKIP:
            out[key] = inner
    return {fw.TAG: fw.DICT, "v": out} if fw.TAG in out else out


def _object_fields(value: Any) -> tuple[str, ...] | None:
    """Field names of a dataclass or pydantic model instance; None for anything else."""
    cls = type(value)
    if dataclasses.is_dataclass(cls):
        return tuple(field.name for field in dataclasses.fields(cls))
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict):
        return tuple(model_fields)
    return None


class FrameFilter:
    """One plugin's `[shadow]` selection: classes by name along the MRO, audio on request."""

    def __init__(
        self,
        names: tuple[str, ...] | None = None,
        *,
        audio: bool = False,
        audio_budget_bytes: int = fw.DEFAULT_AUDIO_BUDGET_BYTES,
    ) -> None:
        self.names = frozenset(names) if names is not None else None
        self.audio = audio
        self.audio_budget = audio_budget_bytes
        self.audio_sent = 0  # raw bytes sent this call
        self._cache: dict[type, bool] = {}

    def wants(self, cls: type) -> bool:
        found = self._cache.get(cls)
        if found is None:
            bases = base_names(cls)
            is_audio = bool(bases & fw.AUDIO_BASES)
            selected = self.names is None or bool(bases & self.names)
            found = self._cache[cls] = selected and (self.audio or not is_audio)
        return found

    def spend(self, carried: int) -> bool:
        """Count an audio frame's bytes against the budget; False when it would exceed it."""
        if self.audio_sent + carried > self.audio_budget:
            return False
        self.audio_sent += carried
        return True
