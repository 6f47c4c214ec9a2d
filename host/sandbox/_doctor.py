"""Sandbox layer: the data behind `plugbox doctor` — layers, and the policy's verdict per plugin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sdk.protocol import SandboxError

from ._policy import LayerStatus, SandboxPolicy, layers_for, probe_layers


@dataclass(frozen=True)
class PluginVerdict:
    plugin: str
    policy: SandboxPolicy
    layers: tuple[str, ...]
    refused: str | None  # why a strict policy would refuse to start it


@dataclass(frozen=True)
class DoctorReport:
    layers: tuple[LayerStatus, ...]
    plugins: tuple[PluginVerdict, ...]


def doctor_report(plugins: Sequence[tuple[str, SandboxPolicy]]) -> DoctorReport:
    """Try every layer, then say what each plugin would get under its policy."""
    verdicts = []
    for name, policy in plugins:
        try:
            verdicts.append(PluginVerdict(name, policy, layers_for(policy, name=name), None))
        except SandboxError as exc:
            verdicts.append(PluginVerdict(name, policy, (), exc.message))
    return DoctorReport(probe_layers(), tuple(verdicts))
