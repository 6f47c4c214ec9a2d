"""Supervisor layer: restart backoff with jitter, and the circuit breaker over crashes.

Contract: after a crash, the next start waits `delay()` (exponential in consecutive crashes from
`base_s`, capped, with full jitter). `CRASH_LIMIT` crashes within `WINDOW_S` open the circuit when
they are at least `CRASH_SHARE` of the calls that ended in that window (crashes plus successful
calls): a plugin that cannot serve is cut off, while one that crashes now and then between many
good calls (or on one bad input among good ones) keeps serving, its crashes retried. An open
circuit refuses starts until `COOL_DOWN_S` has passed, then one trial start is allowed
(half-open); its success closes the circuit, its crash opens it again. The clock and the random
source are injectable.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

BACKOFF_BASE_S = 0.1  # a crashed plugin is usually fine on the next start
# With a zygote a restart is a fork (a few ms, no imports), so the backoff that spares the
# machine scales down with it; the circuit still opens after CRASH_LIMIT crashes in WINDOW_S.
FORK_BACKOFF_BASE_S = 0.01
BACKOFF_CAP_S = 5.0  # never keep a caller waiting longer than this for a restart
CRASH_LIMIT = 5  # crashes ...
WINDOW_S = 60.0  # ... within this window open the circuit
COOL_DOWN_S = 30.0  # time the circuit stays open before a trial start
# ... when they are at least this share of the calls that ended in the window. Without it, 5
# crashes a minute opened the circuit of a plugin serving hundreds of good calls in between
# (5% injected crashes: completion throughput fell to 1.9 runs/s, jobs waiting out circuits).
CRASH_SHARE = 0.5


@dataclass
class CrashBreaker:
    clock: Callable[[], float] = time.monotonic
    uniform: Callable[[float, float], float] = random.uniform
    crash_limit: int = CRASH_LIMIT
    window_s: float = WINDOW_S
    cool_down_s: float = COOL_DOWN_S
    crash_share: float = CRASH_SHARE
    base_s: float = BACKOFF_BASE_S
    consecutive: int = 0
    _crashes: deque[float] = field(default_factory=deque)
    _good: deque[list[float]] = field(default_factory=deque)  # [second, good calls in it]
    _opened_at: float | None = None

    def record_crash(self) -> None:
        now = self.clock()
        self.consecutive += 1
        self._crashes.append(now)
        self._forget(now)
        if self._opened_at is not None or self._tripped():
            self._opened_at = now

    def _tripped(self) -> bool:
        crashes = len(self._crashes)
        good = sum(count for _, count in self._good)
        return crashes >= self.crash_limit and crashes >= self.crash_share * (crashes + good)

    def _forget(self, now: float) -> None:
        """Drop what happened before the window."""
        while self._crashes and now - self._crashes[0] > self.window_s:
            self._crashes.popleft()
        while self._good and now - self._good[0][0] > self.window_s:
            self._good.popleft()

    def record_start(self) -> None:
        """A (trial) start succeeded: the circuit closes; the crash window is kept."""
        self._opened_at = None

    def record_call_ok(self) -> None:
        """A call succeeded: the plugin is healthy again, so backoff starts from zero; counted
        per second (bounded memory at any call rate) against the window's crashes."""
        self.consecutive = 0
        now = self.clock()
        second = float(int(now))
        good = self._good
        if good and good[-1][0] == second:
            good[-1][1] += 1
            return  # a call per second forgets (bounded memory); `record_crash` forgets first
        good.append([second, 1.0])
        self._forget(now)

    def delay(self) -> float:
        """Seconds to wait before the next start (0 when the last start did not crash)."""
        if self.consecutive == 0:
            return 0.0
        ceiling = min(BACKOFF_CAP_S, self.base_s * 2 ** (self.consecutive - 1))
        return self.uniform(ceiling / 2, ceiling)

    def open_for(self) -> float | None:
        """Seconds until a trial start is allowed, or None when the circuit is closed/half-open."""
        if self._opened_at is None:
            return None
        remaining = self._opened_at + self.cool_down_s - self.clock()
        return remaining if remaining > 0 else None

    @property
    def is_open(self) -> bool:
        return self.open_for() is not None
