"""Circuit breaker and restart backoff: pure logic with a fake clock at the seam."""

from __future__ import annotations

from dataclasses import dataclass

from host._breaker import BACKOFF_CAP_S, CrashBreaker


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def upper(low: float, high: float) -> float:
    return high


def test_backoff_grows_exponentially_up_to_the_cap_and_resets_after_a_good_call() -> None:
    breaker = CrashBreaker(clock=FakeClock(), uniform=upper, crash_limit=100)
    assert breaker.delay() == 0.0
    delays = []
    for _ in range(10):
        breaker.record_crash()
        delays.append(breaker.delay())
    assert delays[:3] == [0.1, 0.2, 0.4]
    assert delays[-1] == BACKOFF_CAP_S
    breaker.record_call_ok()
    assert breaker.delay() == 0.0


def test_the_circuit_opens_after_n_crashes_in_the_window_and_half_opens_after_the_cool_down() -> (
    None
):
    clock = FakeClock()
    breaker = CrashBreaker(clock=clock, crash_limit=3, window_s=60, cool_down_s=30)
    for _ in range(2):
        breaker.record_crash()
    assert not breaker.is_open
    breaker.record_crash()
    assert breaker.open_for() == 30
    clock.now += 29
    assert breaker.is_open
    clock.now += 2
    assert not breaker.is_open  # half-open: one trial start is allowed
    breaker.record_crash()  # the trial crashed: open again
    assert breaker.is_open
    clock.now += 31
    breaker.record_start()
    assert not breaker.is_open


def test_crashes_outside_the_window_do_not_open_the_circuit() -> None:
    clock = FakeClock()
    breaker = CrashBreaker(clock=clock, crash_limit=3, window_s=10)
    for _ in range(5):
        breaker.record_crash()
        clock.now += 6
        breaker.record_start()
    assert not breaker.is_open


def test_occasional_crashes_among_many_good_calls_keep_the_circuit_closed() -> None:
    """5% of calls crash (the completion benchmark's injected crashes): far more than 5 crashes a
    minute, but the plugin serves; the circuit stays closed and the crashes are retried."""
    clock = FakeClock()
    breaker = CrashBreaker(clock=clock, crash_limit=5, window_s=60, cool_down_s=30)
    for call in range(2000):
        clock.now += 0.01
        if call % 20 == 0:
            breaker.record_crash()
            breaker.record_start()
        else:
            breaker.record_call_ok()
        assert not breaker.is_open, call


def test_a_plugin_crashing_most_of_its_calls_opens_the_circuit_despite_some_good_calls() -> None:
    clock = FakeClock()
    breaker = CrashBreaker(clock=clock, crash_limit=5, window_s=60, cool_down_s=30)
    opened_after = None
    for call in range(40):
        clock.now += 0.5
        if call % 3 == 2:
            breaker.record_call_ok()
        else:
            breaker.record_crash()
        if breaker.is_open:
            opened_after = call
            break
    assert opened_after is not None
    assert opened_after < 10  # the 5th crash, with 2 good calls in between
    clock.now += 31
    breaker.record_start()
    assert not breaker.is_open
