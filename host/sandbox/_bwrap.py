"""Sandbox layer 2 (when available): bubblewrap around the plugin process, without privilege.

Contract: the system is mounted read-only (a selection of /usr, /lib*, /bin, /etc files, and the
interpreter's own prefix), the plugin directory, its venv and the SDK read-only, a private /tmp,
the plugin's data directory writable, no /sys, a /dev holding only null, zero and urandom, no
network unless the manifest grants it (a new network namespace otherwise), a new PID namespace
(so killing bwrap kills every descendant), and `--die-with-parent`. Nothing else of the host is
visible: not its working tree, not its home. The plugin never holds a capability:

- host run as root: bubblewrap builds the mounts as root, keeps only CAP_SETUID/SETGID/SETPCAP,
  and `setpriv` switches to the plugin's own unprivileged host uid (`plugin_identity`), clearing
  the bounding set, with no_new_privs, before the plugin's interpreter starts. (A user namespace
  would map the inside uid to host uid 0, which still owns root's files: see docs/decisions.md.)
- host not root: bubblewrap's user namespace and `--cap-drop ALL`; the plugin keeps the host's uid.

Both ways the seccomp filter of `_seccomp` is installed by bubblewrap (`--seccomp FD`).
`bwrap_argv(...)` is built from small sections; `extra` options (e.g. a proxy socket bind) go in
before the root is made read-only.
"""

from __future__ import annotations

import os
import shutil
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._base import LaunchSpec

BWRAP = "bwrap"
SETPRIV = "setpriv"
SANDBOX_UID_BASE = 4_200_000  # far above login and system uids, outside the usual subuid ranges
SANDBOX_UID_SPAN = 100_000
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
_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
_SWITCH_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")  # what setpriv needs, nothing more


@dataclass(frozen=True)
class Identity:
    """Who the plugin runs as on the host: its own uid/gid (host is root) or the host's."""

    uid: int
    gid: int
    switched: bool  # True: setpriv switches to uid/gid inside; False: stays the host's (not root)


def plugin_identity(name: str) -> Identity:
    """A stable unprivileged uid per plugin name when the host is root, else the host's own."""
    if os.geteuid() != 0:
        return Identity(os.geteuid(), os.getegid(), switched=False)
    uid = SANDBOX_UID_BASE + zlib.crc32(name.encode()) % SANDBOX_UID_SPAN
    return Identity(uid, uid, switched=True)


def bwrap_path() -> str | None:
    return shutil.which(BWRAP)


def setpriv_path() -> str | None:
    return shutil.which(SETPRIV)


def interpreter_prefixes() -> list[Path]:
    """Where the Python installation lives (resolved), so a venv's symlinks work inside."""
    prefixes = {Path(sys.base_prefix).resolve(), Path(sys.base_exec_prefix).resolve()}
    return sorted(p for p in prefixes if not any(str(p).startswith(d) for d in _SYSTEM_DIRS))


def give_data_dir(spec: LaunchSpec, identity: Identity) -> None:
    """Make the data directory the plugin's own (0700, owned by its uid; symlinks not followed)."""
    data = spec.data_dir
    data.mkdir(parents=True, exist_ok=True)
    if not identity.switched:
        os.chmod(data, 0o700)
        return
    if data.stat().st_uid != identity.uid:
        for root, dirs, files in os.walk(data):
            for entry in (root, *(os.path.join(root, n) for n in (*dirs, *files))):
                os.chown(entry, identity.uid, identity.gid, follow_symlinks=False)
    # Group root may only enter it: bubblewrap, root without capabilities, must chdir there.
    os.chown(data, identity.uid, 0)
    os.chmod(data, 0o710)


def bwrap_argv(
    spec: LaunchSpec,
    executable: str,
    *,
    identity: Identity,
    seccomp_fd: int,
    setpriv: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The full command line: bwrap's options, the privilege switch, then the plugin's argv."""
    args = [executable, *_namespace_args(spec, identity)]
    args += _filesystem_args(spec)
    args += [*extra, "--remount-ro", "/", "--chdir", str(spec.data_dir.resolve())]
    args += ["--seccomp", str(seccomp_fd), *_capability_args(identity), "--"]
    return args + _switch_argv(identity, setpriv) + spec.argv


def _namespace_args(spec: LaunchSpec, identity: Identity) -> list[str]:
    args = ["--die-with-parent", "--new-session", "--unshare-pid"]
    args += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not identity.switched:
        args.append("--unshare-user")  # unprivileged: the user namespace is how bwrap mounts
    if not spec.permissions.network:
        args.append("--unshare-net")
    return args


def _filesystem_args(spec: LaunchSpec) -> list[str]:
    args = ["--perms", "0755", "--dir", "/etc"]
    for directory in _SYSTEM_DIRS:
        args += ["--ro-bind-try", directory, directory]
    for etc_path in _ETC_FILES:
        args += ["--ro-bind-try", etc_path, etc_path]
    args += ["--proc", "/proc", "--perms", "0755", "--dir", "/dev"]
    for device in _DEVICES:
        args += ["--dev-bind", device, device]
    args += ["--symlink", "/proc/self/fd", "/dev/fd", "--perms", "01777", "--tmpfs", "/tmp"]
    read_only = [*interpreter_prefixes(), spec.plugin_dir, *spec.read_only_paths]
    if spec.venv_dir is not None:
        read_only.append(spec.venv_dir)
    writable = [spec.data_dir, *spec.permissions.writable_paths]
    targets = [str(Path(p).resolve()) for p in (*read_only, *writable)]
    args += _parent_dirs(targets)
    for source in targets[: len(read_only)]:
        args += ["--ro-bind", source, source]
    for target in targets[len(read_only) :]:
        args += ["--bind", target, target]
    return args


def _parent_dirs(targets: Sequence[str]) -> list[str]:
    """Mount points' parents, traversable by the plugin's uid (bwrap would make them 0700)."""
    parents: dict[str, None] = {}
    for target in targets:
        for ancestor in reversed(Path(target).parents):
            if str(ancestor) != "/":
                parents[str(ancestor)] = None
    args: list[str] = []
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    return args


def _capability_args(identity: Identity) -> list[str]:
    args = ["--cap-drop", "ALL"]
    if identity.switched:
        for cap in _SWITCH_CAPS:
            args += ["--cap-add", cap]
    return args


def _switch_argv(identity: Identity, setpriv: str | None) -> list[str]:
    if not identity.switched:
        return []
    if setpriv is None:
        raise RuntimeError("setpriv (util-linux) is needed to drop root inside bubblewrap")
    return [
        setpriv,
        f"--reuid={identity.uid}",
        f"--regid={identity.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]
