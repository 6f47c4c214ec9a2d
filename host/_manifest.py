"""Discovery layer: `plugin.toml` manifests, validated, one plugin per directory.

Contract: every directory under the plugins root holding a `plugin.toml` is a plugin. A manifest
is validated strictly (unknown keys refused, every limit defaulted); a broken one becomes a
`DiscoveryError` naming the file, the key and the problem, and the other plugins still load. Two
plugins claiming the same name or import package are both reported, by path.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sdk.protocol import FrameWire

from ._keys import RESERVED_PREFIXES
from ._requirements import parse_requirements

MANIFEST_FILE = "plugin.toml"
Phase = Literal["qa", "integration", "webhook"]
PHASE_ORDER: tuple[Phase, ...] = ("qa", "integration", "webhook")
SandboxPolicyName = Literal["strict", "standard", "process-only", "off"]
_IDENTIFIER = r"^[a-z][a-z0-9_]{0,63}$"
_SNAPSHOT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# A host name or address, optionally with one leading `*.` label wildcard, then `:port`.
_DESTINATION = re.compile(r"^(\*\.)?([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+:([0-9]{1,5})$")
_IPV6_DESTINATION = re.compile(r"^\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})$")


def parse_destination(text: str) -> tuple[str, int]:
    """`host:port`, `*.domain:port` or `[v6]:port` as (host pattern, port); ValueError otherwise."""
    match = _IPV6_DESTINATION.match(text)
    if match:
        host, port = match.group(1), int(match.group(2))
    elif _DESTINATION.match(text):
        host, _, port_text = text.rpartition(":")
        port = int(port_text)
    else:
        raise ValueError(f"network destination {text!r} is not host:port or *.domain:port")
    if not 0 < port < 65536:
        raise ValueError(f"network destination {text!r}: port out of range")
    return host.lower(), port


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Permissions(_Strict):
    """What the plugin *requests*; the operator's grants (`_grants`) decide what it gets."""

    # `true`: all outbound network (an operator-only grant); a list: egress destinations
    # ("host:port", "*.domain:port") reached through the host's egress proxy.
    network: bool | tuple[str, ...] = False
    env: tuple[str, ...] = ()  # host environment keys the plugin asks to see
    # Sub-directories of the plugin's data directory (relative; never absolute or `..`: such a
    # request is reported as one the operator cannot grant, not silently dropped).
    writable_paths: tuple[str, ...] = ()

    @field_validator("network")
    @classmethod
    def _destinations(cls, value: bool | tuple[str, ...]) -> bool | tuple[str, ...]:
        if not isinstance(value, bool):
            for destination in value:
                parse_destination(destination)
        return value


class Limits(_Strict):
    memory_mb: int = Field(512, ge=32)
    cpu_seconds: int = Field(300, ge=1)  # CPU time over the process's life, not wall time
    open_files: int = Field(256, ge=16)
    file_size_mb: int = Field(64, ge=1)
    disk_mb: int = Field(256, ge=1)  # the data directory's quota (host/_disk.py)
    pids: int = Field(64, ge=4)
    call_timeout_s: float = Field(10.0, gt=0)
    startup_timeout_s: float = Field(20.0, gt=0)
    completion_timeout_s: float = Field(60.0, gt=0)


class CompletionPolicy(_Strict):
    phase: Phase = "integration"
    max_attempts: int = Field(3, ge=1, le=20)
    backoff_s: float = Field(0.5, ge=0)
    # Each run in a fresh fork of the plugin's zygote: nothing one run (tenant) leaves in memory
    # is seen by the next. Costs a fork and a handshake per run (bench: fork_per_run_overhead_ms).
    fresh_process: bool = False


class ShadowFrames(_Strict):
    """Which pipecat frames the plugin's shadow-task observers need (`[shadow]`): the host sends
    only these, and only when a session attached an observer or a task handler."""

    # Frame class names; a base class selects its subclasses ("TextFrame", "Frame"). None: every
    # frame but audio.
    frames: tuple[str, ...] | None = None
    audio: bool = False  # audio frames (any `AudioRawFrame`), their samples base64-encoded
    audio_budget_bytes: int = Field(FrameWire.DEFAULT_AUDIO_BUDGET_BYTES, ge=0)  # per call

    @field_validator("frames")
    @classmethod
    def _names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if not name.isidentifier():
                raise ValueError(f"frame class name {name!r} is not an identifier")
        return value


class Manifest(_Strict):
    """One plugin's manifest. `directory` is filled in by discovery."""

    name: str = Field(pattern=_IDENTIFIER)
    version: str = "0.0.0"
    package: str = Field(pattern=_IDENTIFIER)
    requirements: tuple[str, ...] = ()
    python: str | None = None  # an interpreter path the operator allowed; default: the host's
    compat: bool = False  # alias the in-process framework's import paths inside the plugin
    # A floor: a stricter policy than the operator's is used; a looser one is only a request.
    sandbox_policy: SandboxPolicyName | None = None
    permissions: Permissions = Permissions()
    limits: Limits = Limits()
    completion: CompletionPolicy = CompletionPolicy()
    # Log keys its live snapshot may set besides its name and `<name>_...` (`_keys.granted_keys`:
    # a key another plugin's prefix owns or another plugin declares too is granted to neither).
    snapshot_keys: tuple[str, ...] = ()
    shadow: ShadowFrames = ShadowFrames()
    directory: Path = Path()

    @field_validator("snapshot_keys")
    @classmethod
    def _plain_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if not _SNAPSHOT_KEY.fullmatch(key) or key.startswith(RESERVED_PREFIXES):
                raise ValueError(f"snapshot key {key!r} is not a plain key the host may grant")
        return value

    @field_validator("requirements")
    @classmethod
    def _pep508(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Only PEP 508 names from the operator's index: never an installer option or a URL.
        return parse_requirements(value)

    def source_hash(self) -> str:
        """A content hash of the manifest and every file of the plugin's package."""
        digest = hashlib.sha256()
        for path in sorted(self._source_files()):
            digest.update(str(path.relative_to(self.directory)).encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def _source_files(self) -> list[Path]:
        """Regular files only, symlinks never followed: a link to /etc/shadow or to a 300 MB
        file outside the folder is not read (as root) nor hashed (issue #14)."""
        files = [self.directory / MANIFEST_FILE]
        package_dir = self.directory / self.package
        if package_dir.is_dir() and not package_dir.is_symlink():
            for root, dirs, names in os.walk(package_dir, followlinks=False):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                files += [p for n in names if (p := Path(root, n)).is_file() and not p.is_symlink()]
        return files


@dataclass(frozen=True)
class DiscoveryError:
    """A plugin that could not be loaded: its path, the key at fault, and what is wrong."""

    path: Path
    key: str
    message: str

    @property
    def name(self) -> str:
        return self.path.parent.name

    def __str__(self) -> str:
        where = f"{self.path}" + (f" [{self.key}]" if self.key else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Discovery:
    manifests: dict[str, Manifest]
    errors: list[DiscoveryError]


def load_manifest(directory: Path) -> Manifest:
    """Read and validate one plugin directory's manifest; raises `ManifestError`."""
    path = directory / MANIFEST_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(DiscoveryError(path, "", f"cannot read: {exc}")) from None
    try:
        manifest = Manifest.model_validate({**raw, "directory": directory.resolve()})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ManifestError(DiscoveryError(path, key, first["msg"])) from None
    if not (directory / manifest.package / "__init__.py").is_file():
        problem = f"import package {manifest.package!r} not found ({manifest.package}/__init__.py)"
        raise ManifestError(DiscoveryError(path, "package", problem))
    return manifest


class ManifestError(ValueError):
    def __init__(self, error: DiscoveryError) -> None:
        super().__init__(str(error))
        self.error = error


def discover(root: Path) -> Discovery:
    """Every valid plugin under `root` by name (sorted), and every broken one as an error."""
    manifests: dict[str, Manifest] = {}
    errors: list[DiscoveryError] = []
    claimed: dict[str, Path] = {}
    candidates = sorted(p.parent for p in root.glob(f"*/{MANIFEST_FILE}")) if root.is_dir() else []
    for directory in candidates:
        try:
            manifest = load_manifest(directory)
        except ManifestError as exc:
            errors.append(exc.error)
            continue
        clash = _clash(manifest, claimed)
        if clash:
            errors.append(clash)
            manifests.pop(manifest.name, None)
            continue
        manifests[manifest.name] = manifest
        claimed[f"name:{manifest.name}"] = directory
        claimed[f"package:{manifest.package}"] = directory
    return Discovery(dict(sorted(manifests.items())), errors)


def _clash(manifest: Manifest, claimed: dict[str, Path]) -> DiscoveryError | None:
    for key in (f"name:{manifest.name}", f"package:{manifest.package}"):
        other = claimed.get(key)
        if other is not None:
            kind, value = key.split(":", 1)
            return DiscoveryError(
                manifest.directory / MANIFEST_FILE,
                kind,
                f"{kind} {value!r} is claimed by both {other} and {manifest.directory}",
            )
    return None


def valid_identifier(text: str) -> bool:
    return re.match(_IDENTIFIER, text) is not None
