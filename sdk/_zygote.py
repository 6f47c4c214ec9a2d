"""Server layer: the per-plugin zygote — import the plugin once, fork a fresh worker per start.

Contract: when the host passes a control socket (`PLUGBOX_ZYGOTE_FD`, an inherited
SOCK_SEQPACKET end), `sdk.serve` imports the plugin and then, instead of serving the wire itself,
answers control messages, one at a time:

- `spawn` carrying three fds (wire in, wire out, stderr): forks a worker that puts them in place
  and serves the wire exactly as a plain `sdk.serve` would; answered `pid <pid>`. Several workers
  may live at once (the one serving the host, and one per fresh-process completion run).
- `kill <pid> <signal>`: signals that worker's process group (each worker leads its own).
- a worker ends: its process group is killed (grandchildren die with it, as with a plain plugin),
  it is reaped and `exit <pid> <code>` is sent (a signal as a negative code).
- end of the socket (the host closed it or died): every worker is killed and the zygote exits.

The worker is a fork inside the same sandbox: same namespaces, uid, seccomp filter, rlimits and
cgroup, so it keeps every sandbox property; it dies with the zygote (PR_SET_PDEATHSIG). A zygote
belongs to one plugin and its sandbox: nothing is shared across plugins. The zygote starts no
event loop, so the fork never copies one.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable

ZYGOTE_FD_ENV = "PLUGBOX_ZYGOTE_FD"
SPAWN_FDS = 3  # wire in, wire out, stderr
_PR_SET_PDEATHSIG = 1
_MESSAGE = 64  # control messages are short ASCII lines

Worker = Callable[[int, int], None]  # (wire read fd, wire write fd) -> serves, then returns


def control_socket() -> socket.socket | None:
    """The host's control socket when this process is a zygote, else None."""
    raw = os.environ.pop(ZYGOTE_FD_ENV, None)
    if not raw:
        return None
    sock = socket.socket(fileno=int(raw))
    sock.set_inheritable(False)
    return sock


def run_zygote(ctl: socket.socket, worker: Worker) -> int:
    """Answer the host's control messages until the socket ends; the zygote's exit code."""
    zygote = _Zygote(ctl, worker)
    return zygote.loop()


class _Zygote:
    def __init__(self, ctl: socket.socket, worker: Worker) -> None:
        self._ctl = ctl
        self._worker = worker
        self._workers: dict[int, int] = {}  # worker pid -> its pidfd

    def loop(self) -> int:
        while True:
            by_fd = {fd: pid for pid, fd in self._workers.items()}
            # poll, not select: the descriptors a host passes keep their numbers, and a host
            # holding 1000+ files passes some above select's FD_SETSIZE (1024).
            poller = select.poll()
            for fd in (self._ctl.fileno(), *by_fd):
                poller.register(fd, select.POLLIN)
            ready = {fd for fd, _ in poller.poll()}  # a closed ctl reports POLLHUP: read, EOF
            for fd in ready:
                if fd in by_fd:
                    self._reap(by_fd[fd])
            if self._ctl.fileno() in ready and not self._on_message():
                for pid in list(self._workers):
                    self._reap(pid)
                return 0

    def _on_message(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self._ctl, _MESSAGE, SPAWN_FDS)
        except OSError:
            return False
        if not data:
            return False
        command, *args = data.decode("ascii", "replace").split()
        if command == "spawn" and len(fds) == SPAWN_FDS:
            self._send(f"pid {self._spawn(*fds)}")
        elif command == "kill" and len(args) == 2 and int(args[0]) in self._workers:
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.killpg(int(args[0]), int(args[1]))
        for fd in fds:
            os.close(fd)
        return True

    def _spawn(self, wire_in: int, wire_out: int, err: int) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        # Everything imported so far moves to the permanent generation: the worker's collector
        # never walks (and so never writes to, i.e. copies) the pages the zygote's objects share.
        gc.freeze()
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the zygote's loop
            code = 0
            try:
                for pidfd in self._workers.values():
                    os.close(pidfd)
                _become_worker(zygote, self._ctl, err)
                os.set_inheritable(wire_in, False)  # never into a subprocess the plugin starts
                os.set_inheritable(wire_out, False)
                self._worker(wire_in, wire_out)
            except BaseException:  # a worker reports and exits, whatever happened
                traceback.print_exc()
                code = 1
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os._exit(code)
        self._workers[pid] = os.pidfd_open(pid)
        return pid

    def _reap(self, pid: int) -> None:
        """Kill the worker's group (grandchildren die with it), reap it and report its exit."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(self._workers.pop(pid))
        self._send(f"exit {pid} {os.waitstatus_to_exitcode(status)}")

    def _send(self, text: str) -> None:
        with contextlib.suppress(OSError):  # the host is gone: the next receive ends the loop
            self._ctl.send(text.encode("ascii"))


def _become_worker(zygote: int, ctl: socket.socket, err: int) -> None:
    """In the forked child: own process group, die with the zygote, stderr (and fd 1) to `err`."""
    os.setpgid(0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != zygote:  # the zygote died between fork and prctl
        os._exit(1)
    ctl.close()
    os.dup2(err, 2)
    os.dup2(err, 1)
    os.close(err)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
