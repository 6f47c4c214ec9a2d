"""Shadow layer: `pipecat.frame` payloads rebuilt as frames, with pipecat or with stand-ins.

Contract: `Rebuilder.load()` imports pipecat when the plugin's venv has it (never at SDK import: the
SDK keeps no dependency on pipecat) and otherwise rebuilds with stand-ins. `pushed(payload, proxy)`
returns a `FramePushed` (pipecat's own class, or `StandInPushed` with the same attribute names)
whose `frame` is a real pipecat frame of the payload's class (the host's `id`, `name` and broadcast
sibling id kept, so dedupe by `frame.id` works), or `None` for a class this process cannot import:
the caller skips and counts it. Nested metrics models and enums are rebuilt as their pipecat
classes; processors become the shadow task's proxies. Only modules under `IMPORTABLE_PREFIXES` are
ever imported by name. With stand-ins every frame is a `StandInFrame` subclass named after the
host's class, so `type(frame).__name__` and attribute reads match; `isinstance` against pipecat's
classes needs pipecat.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import importlib
import threading
from collections.abc import Callable
from typing import Any

from .protocol import FrameWire as fw

ProxyFor = Callable[[str | None], Any]  # a processor name -> the shadow task's proxy for it
_shared: Rebuilder | None = None
_shared_lock = threading.Lock()


class StandInDirection(enum.IntEnum):
    """pipecat's `FrameDirection` values, for plugins without pipecat."""

    DOWNSTREAM = 1
    UPSTREAM = 2


class StandInFrame:
    """A frame of a class this process cannot import: attributes only."""

    id: int
    name: str
    broadcast_sibling_id: int | None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'name', '?')})"


class StandInObject:
    """A nested value (metrics data, a token usage record) without its pipecat class."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({vars(self)})"


@dataclasses.dataclass
class StandInPushed:
    """pipecat's `FramePushed`, for plugins without pipecat."""

    source: Any
    destination: Any
    frame: Any
    direction: Any
    timestamp: int
    first_push: bool = True


class Rebuilder:
    """Turns payloads into frames; `with_pipecat` says which way."""

    def __init__(self, *, pipecat: bool) -> None:
        self.with_pipecat = pipecat
        self._classes: dict[tuple[str, str], type | None] = {}
        self._stand_ins: dict[tuple[str, str, type], type] = {}
        self._pushed: Any = StandInPushed
        self._direction: Any = StandInDirection
        if pipecat:
            self._pushed = importlib.import_module("pipecat.observers.base_observer").FramePushed
            processors = importlib.import_module("pipecat.processors.frame_processor")
            self._direction = processors.FrameDirection

    @classmethod
    def load(cls) -> Rebuilder:
        """With pipecat when this process can import it, else with stand-ins."""
        try:
            return cls(pipecat=True)
        except ImportError:
            return cls(pipecat=False)

    @classmethod
    def shared(cls) -> Rebuilder:
        """One per process: its class caches serve every run. The first call imports pipecat
        (seconds on a busy machine): call it from a worker thread, never on the event loop."""
        global _shared
        with _shared_lock:
            if _shared is None:
                _shared = cls.load()
            return _shared

    def pushed(self, payload: dict[str, Any], proxy: ProxyFor) -> Any | None:
        """The `FramePushed` for one payload; None when its frame class is unknown here."""
        frame = self.frame(payload, proxy)
        if frame is None:
            return None
        return self._pushed(
            source=proxy(payload.get(fw.SRC)),
            destination=proxy(payload.get(fw.DST)),
            frame=frame,
            direction=self._direction(int(payload.get(fw.DIR, 1))),
            timestamp=int(payload.get(fw.TS, 0)),
        )

    def frame(self, payload: dict[str, Any], proxy: ProxyFor) -> Any | None:
        name, module = str(payload[fw.CLS]), str(payload[fw.MODULE])
        cls = self._resolve(module, name) if self.with_pipecat else None
        if cls is None and self.with_pipecat:
            return None  # unknown here: skipped and counted by the caller
        fields = {k: self._value(v, proxy) for k, v in dict(payload.get(fw.FIELDS) or {}).items()}
        frame = (
            _construct(cls, fields)
            if cls is not None
            else _stand_in(self._stand_in_class(module, name, StandInFrame), fields)
        )
        for attr, key in (("id", fw.ID), ("name", fw.NAME), ("broadcast_sibling_id", fw.SIBLING)):
            object.__setattr__(frame, attr, payload.get(key))
        return frame

    def _resolve(self, module: str, qualname: str) -> type | None:
        key = (module, qualname)
        if key not in self._classes:
            self._classes[key] = _import_class(module, qualname)
        return self._classes[key]

    def _stand_in_class(self, module: str, name: str, base: type) -> type:
        key = (module, name, base)
        found = self._stand_ins.get(key)
        if found is None:
            short = name.rpartition(".")[2] or "Unknown"
            found = self._stand_ins[key] = type(short, (base,), {"__module__": module})
        return found

    def _value(self, value: Any, proxy: ProxyFor) -> Any:
        if isinstance(value, list):
            return [self._value(item, proxy) for item in value]
        if not isinstance(value, dict):
            return value
        tag = value.get(fw.TAG)
        if tag is None:
            return {k: self._value(v, proxy) for k, v in value.items()}
        if tag == fw.DICT:
            return {k: self._value(v, proxy) for k, v in dict(value.get("v") or {}).items()}
        if tag == fw.PROCESSOR:
            return proxy(value.get("name"))
        if tag == fw.BYTES:
            return base64.b64decode(str(value.get("b64", "")))
        module, name = str(value.get("module", "")), str(value.get("cls", ""))
        cls = self._resolve(module, name) if self.with_pipecat else None
        if tag == fw.ENUM:
            return _enum(cls, value.get("v"))
        fields = {k: self._value(v, proxy) for k, v in dict(value.get("f") or {}).items()}
        if cls is None:
            return _stand_in(self._stand_in_class(module, name, StandInObject), fields)
        return _construct(cls, fields)


def _import_class(module: str, qualname: str) -> type | None:
    if not module.startswith(fw.IMPORTABLE_PREFIXES):
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) else None


def _enum(cls: type | None, value: Any) -> Any:
    if cls is None:
        return value
    try:
        return cls(value)
    except (ValueError, TypeError):
        return value


def _stand_in(cls: type, fields: dict[str, Any]) -> Any:
    obj = cls()
    for key, value in fields.items():
        setattr(obj, key, value)
    return obj


_init_fields: dict[type, frozenset[str]] = {}  # per dataclass: its `__init__`'s field names


def _construct(cls: type, fields: dict[str, Any]) -> Any:
    """An instance of `cls` holding `fields`: its constructor first, else field by field."""
    init = _init_fields.get(cls)
    if init is None and dataclasses.is_dataclass(cls):
        # Once per class: `dataclasses.fields` walks them all in Python, a few us a frame.
        init = _init_fields[cls] = frozenset(f.name for f in dataclasses.fields(cls) if f.init)
    if init is not None:
        try:
            obj = cls(**{k: v for k, v in fields.items() if k in init})
        except Exception:  # a required field the host could not send: build it field by field
            obj = _bare_dataclass(cls)
        for key, value in fields.items():
            object.__setattr__(obj, key, value)
        return obj
    try:
        return cls(**fields)
    except Exception:  # pydantic validation on a partial record: keep what came
        construct = getattr(cls, "model_construct", None)
        if construct is not None:
            return construct(**fields)
        return _stand_in(type(cls.__name__, (StandInObject,), {}), fields)


def _bare_dataclass(cls: type) -> Any:
    obj: Any = object.__new__(cls)
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            value: Any = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            value = None
        object.__setattr__(obj, field.name, value)
    return obj
