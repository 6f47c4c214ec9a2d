"""Sandbox layer 2, part: the seccomp filter bubblewrap installs before the plugin's first exec.

Contract: `seccomp_program()` is the compiled BPF program (built once with libseccomp through the
`pyseccomp` binding, see docs/decisions.md) that allows every system call except those a plugin
could use to leave or attack its sandbox: mounting and the new mount API, handles that bypass the
path walk (`open_by_handle_at`), tracing and reading other processes, the kernel keyring, BPF,
perf, module loading, kexec, reboot, swap, and any namespace creation or entry (`unshare`/`clone`
with a `CLONE_NEW*` flag, `setns`). `clone3` answers ENOSYS so libc falls back to `clone`, whose
flags the filter can see. `seccomp_fd()` is a fresh memfd holding the program, for `--seccomp FD`.
`seccomp_unavailable()` says why no filter can be built here (None when it can).
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import tempfile
from typing import Any

DENIED = (
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "setns",
    "quotactl",
    "syslog",
    "acct",
    "iopl",
    "ioperm",
    "vhangup",
)
NO_SUCH_CALL = ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register")
_CLONE_NEW = {
    "CLONE_NEWTIME": 0x00000080,
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
_TIOCSTI = 0x5412  # push bytes into a terminal's input: a classic escape through a shared tty


def seccomp_unavailable() -> str | None:
    try:
        seccomp_program()
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        return f"no seccomp filter: {exc} (install plugbox[host], which brings pyseccomp)"
    return None


@functools.cache
def seccomp_program() -> bytes:
    """The BPF program for this machine's native architecture."""
    import pyseccomp as sc  # type: ignore[import-untyped]  # imported late: a host without libseccomp still runs layer 1

    program = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        _rule(program, sc.ERRNO(errno.EPERM), name)
    for name in NO_SUCH_CALL:
        _rule(program, sc.ERRNO(errno.ENOSYS), name)
    for flag in _CLONE_NEW.values():
        for call in ("unshare", "clone"):
            _rule(program, sc.ERRNO(errno.EPERM), call, sc.Arg(0, sc.MASKED_EQ, flag, flag))
    _rule(program, sc.ERRNO(errno.EPERM), "ioctl", sc.Arg(1, sc.EQ, _TIOCSTI))
    with tempfile.TemporaryFile() as stream:
        program.export_bpf(stream)
        stream.seek(0)
        return stream.read()


def _rule(program: Any, action: Any, name: str, *args: Any) -> None:
    sc = sys.modules["pyseccomp"]
    if sc.resolve_syscall(sc.Arch.NATIVE, name) < 0:
        return  # a call this architecture does not have (e.g. iopl on arm64)
    program.add_rule(action, name, *args)


def seccomp_fd() -> int:
    """A new memfd, positioned at 0, holding the program (the caller passes and closes it)."""
    fd = os.memfd_create("plugbox-seccomp", 0)
    try:
        os.write(fd, seccomp_program())
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
