"""Wire layer: how a pipecat frame travels to a plugin's shadow task (the `pipecat.frame` payload).

Contract: the host's bridge turns each frame a plugin's manifest selects into the `data` of one
`LiveEvent(kind="pipecat.frame")`, a plain JSON object with the keys below; the plugin's
`ShadowTask` rebuilds it (a real pipecat frame when pipecat is importable there, a stand-in with the
same attribute names otherwise). Field values are plain JSON, or one of the tagged objects below (a
dict whose `TAG` key names what it is); a field whose value is none of these (a live LLM context, a
lock, a callback) is left out, and the rebuilt frame keeps its class default. A plain dict that
happens to hold a `TAG` key travels wrapped as `{TAG: "dict", "v": {...}}`. Nothing here imports
pipecat: both sides read objects by attribute.
"""

from __future__ import annotations

from typing import Final


class FrameWire:
    """The payload keys, value tags and limits above, as one namespace."""

    # Keys of a frame payload.
    CLS: Final = "cls"  # the frame's class name (`TranscriptionFrame`)
    MODULE: Final = "module"  # the module defining it (`pipecat.frames.frames`)
    ID: Final = (
        "id"  # `frame.id` in the host process (unique per host process: pair it with the run)
    )
    NAME: Final = "name"  # `frame.name` (`TranscriptionFrame#3`)
    SIBLING: Final = (
        "sibling"  # `frame.broadcast_sibling_id` (the other copy of a broadcast) or null
    )
    SRC: Final = "src"  # the pushing processor's name
    DST: Final = "dst"  # the receiving processor's name
    DIR: Final = "dir"  # 1 downstream, 2 upstream (pipecat's `FrameDirection` values)
    TS: Final = "ts"  # `FramePushed.timestamp`: nanoseconds on the pipeline clock
    FIELDS: Final = "fields"  # the frame's dataclass fields, by name (base `Frame` ids excluded)

    # Tagged values inside `fields`.
    TAG: Final = "$t"
    OBJECT: Final = (
        "obj"  # {TAG, "cls", "module", "f": {field: value}}: a dataclass or pydantic model
    )
    ENUM: Final = "enum"  # {TAG, "cls", "module", "v": value}
    PROCESSOR: Final = "proc"  # {TAG, "name"}: a reference to a host processor
    BYTES: Final = "bytes"  # {TAG, "b64"}: raw bytes (audio frames only, when the manifest asks)
    DICT: Final = "dict"  # {TAG, "v": {...}}: a plain dict that holds a TAG key itself

    # Only classes from these module trees are ever imported by name on the plugin side.
    IMPORTABLE_PREFIXES: Final = ("pipecat.",)
    # A frame whose class has one of these bases (by name) is an audio frame: sent only on request.
    AUDIO_BASES: Final[frozenset[str]] = frozenset({"AudioRawFrame"})
    DEFAULT_AUDIO_BUDGET_BYTES: Final = (
        8 * 1024 * 1024
    )  # per plugin and call: ~4 min of 16 kHz mono
    MAX_VALUE_DEPTH: Final = 8  # nesting kept inside a field; deeper values are left out
