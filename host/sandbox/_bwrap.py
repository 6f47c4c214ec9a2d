"""Sandbox layer 2 (when available): bubblewrap around the plugin process.

Contract: the system is mounted read-only (a selection of /usr, /lib*, /bin, /etc files, and the
interpreter's own prefix), the plugin directory, its venv and the SDK read-only, a private /tmp,
the plugin's data directory writable, no network unless the manifest grants it (a new network
namespace otherwise), a new PID namespace (so killing bwrap kills every descendant), and
`--die-with-parent`. Nothing else of the host is visible: not its working tree, not its home.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ._base import LaunchSpec

BWRAP = "bwrap"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32")
_ETC_FILES = (
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/mime.types",
)


def bwrap_path() -> str | None:
    return shutil.which(BWRAP)


def interpreter_prefixes() -> list[Path]:
    """Where the Python installation lives (resolved), so a venv's symlinks work inside."""
    prefixes = {Path(sys.base_prefix).resolve(), Path(sys.base_exec_prefix).resolve()}
    return sorted(p for p in prefixes if not any(str(p).startswith(d) for d in _SYSTEM_DIRS))


def bwrap_argv(spec: LaunchSpec, executable: str) -> list[str]:
    """The full command line: bwrap's options, then the plugin's own argv."""
    args = [executable, "--die-with-parent", "--new-session", "--unshare-pid"]
    args += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not spec.permissions.network:
        args.append("--unshare-net")
    for directory in _SYSTEM_DIRS:
        args += ["--ro-bind-try", directory, directory]
    for etc_path in _ETC_FILES:
        args += ["--ro-bind-try", etc_path, etc_path]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    read_only = [*interpreter_prefixes(), spec.plugin_dir, *spec.read_only_paths]
    if spec.venv_dir is not None:
        read_only.append(spec.venv_dir)
    for ro_path in read_only:
        source = str(Path(ro_path).resolve())
        args += ["--ro-bind", source, source]
    for rw_path in [spec.data_dir, *spec.permissions.writable_paths]:
        target = str(Path(rw_path).resolve())
        args += ["--bind", target, target]
    # The root bwrap builds is a tmpfs holding the mount points; make it read-only so nothing but
    # the data directory (and granted paths, and the private /tmp) can be written.
    args += ["--remount-ro", "/", "--chdir", str(spec.data_dir.resolve()), "--"]
    return args + spec.argv
