"""Sandbox layer: the runner seam and its layers (process limits, bubblewrap, cgroups).

`launch(spec, policy)` starts a plugin process under every layer the policy asks for and the
machine offers; `probe_layers()` says which layers work here (tried, not assumed);
`doctor_report(...)` is what `plugbox doctor` prints.
"""

from ._base import LaunchSpec as LaunchSpec
from ._base import RunningProcess as RunningProcess
from ._base import SandboxLimits as SandboxLimits
from ._base import SandboxPermissions as SandboxPermissions
from ._build import build_command as build_command
from ._doctor import DoctorReport as DoctorReport
from ._doctor import PluginVerdict as PluginVerdict
from ._doctor import doctor_report as doctor_report
from ._launch import launch as launch
from ._policy import LayerStatus as LayerStatus
from ._policy import SandboxPolicy as SandboxPolicy
from ._policy import layers_for as layers_for
from ._policy import probe_layers as probe_layers
from ._spawn import PipeReaderProtocol as PipeReaderProtocol

__all__ = [
    "DoctorReport",
    "LaunchSpec",
    "LayerStatus",
    "PipeReaderProtocol",
    "PluginVerdict",
    "RunningProcess",
    "SandboxLimits",
    "SandboxPermissions",
    "SandboxPolicy",
    "build_command",
    "doctor_report",
    "launch",
    "layers_for",
    "probe_layers",
]
