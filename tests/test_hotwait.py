"""The hot path's waits: a bell rung from another thread ends a worker's poll, a release's wait ends at its due time
(and rings the bells it was given first), and without the native module the same calls work in Python."""

import threading
import time

import pytest

from staronnx_cli.runtime import hotwait
from staronnx_cli.runtime.hotwait import Bell


@pytest.fixture(params=["native", "python"])
def mode(request, monkeypatch):
    if request.param == "native":
        if not hotwait.NATIVE:
            pytest.fail("the native _hotpath module was not built: pip install -e . needs a C compiler")
    else:
        monkeypatch.setattr(hotwait, "_hotpath", None)
    return request.param


def test_a_bell_rung_from_another_thread_ends_the_poll(mode):
    bell = Bell()
    seen = bell.value()
    threading.Timer(0.02, bell.ring).start()
    t0 = time.perf_counter()
    got = bell.wait_change(seen, spin_s=2.0)
    if mode == "native":
        assert got == seen + 1 and time.perf_counter() - t0 < 1.0  # woken by the ring, not by the 2 s limit
    else:
        assert got == seen and time.perf_counter() - t0 < 0.01  # Python cannot poll without the GIL: it returns


def test_a_poll_that_hears_nothing_returns_the_same_value_after_its_time():
    bell = Bell()
    t0 = time.perf_counter()
    assert bell.wait_change(bell.value(), spin_s=0.01) == 0
    assert time.perf_counter() - t0 >= (0.009 if hotwait.NATIVE else 0.0)


def test_a_wait_until_a_due_time_ends_then_and_rings_its_bells_first(mode):
    bell, worker = Bell(), Bell()
    due = time.perf_counter() + 0.01
    got = bell.wait_until(bell.value(), due, rings=[worker, worker])
    assert got == 0 and worker.value() == 2
    if mode == "native":
        assert time.perf_counter() >= due
    else:  # Python sleeps at most until due: its caller looks again
        assert time.perf_counter() >= due - 0.001


def test_a_wait_until_ends_early_when_its_own_bell_rings():
    bell = Bell()
    threading.Timer(0.02, bell.ring).start()
    t0 = time.perf_counter()
    got = bell.wait_until(bell.value(), time.perf_counter() + 2.0)
    assert time.perf_counter() - t0 < (1.0 if hotwait.NATIVE else 0.2) and (got == 1 or not hotwait.NATIVE)


def test_a_bell_must_be_a_writable_aligned_buffer():
    if not hotwait.NATIVE:
        pytest.skip("the native module checks its buffers")
    with pytest.raises(ValueError, match="at least 8 bytes"):
        hotwait._hotpath.wait_change(bytearray(4), 0, 1000)
    with pytest.raises(BufferError):
        hotwait._hotpath.wait_change(b"12345678", 0, 1000)


def test_the_native_clock_is_perf_counters():
    if not hotwait.NATIVE:
        pytest.skip("no native module")
    assert abs(hotwait._hotpath.monotonic_ns() - time.perf_counter_ns()) < 1_000_000
