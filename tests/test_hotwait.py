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
    timer = threading.Timer(0.02 if mode == "native" else 0.5, bell.ring)
    timer.start()
    t0 = time.perf_counter()
    got = bell.wait_change(seen, spin_s=2.0)
    if mode == "native":
        assert got == seen + 1 and time.perf_counter() - t0 < 1.0  # woken by the ring, not by the 2 s limit
    else:
        assert got == seen and time.perf_counter() - t0 < 0.2  # Python cannot poll without the GIL: it returns
    timer.join()


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


def test_a_completion_that_raises_on_a_worker_is_raised_on_the_loops_thread():
    from staronnx_cli.runtime.loop import RealLoop

    loop = RealLoop(lead_s=0.0)

    def broken():
        raise ValueError("bookkeeping failed")

    worker = threading.Thread(target=loop.deliver, args=(broken,))
    worker.start()
    worker.join()  # the worker survives its completion's error
    event = loop.wait_next()
    with pytest.raises(ValueError, match="bookkeeping failed"):
        loop.call(*event)


def test_a_completion_posted_while_the_lock_is_held_runs_on_the_loops_thread_in_order():
    from staronnx_cli.runtime.loop import RealLoop

    loop, ran = RealLoop(lead_s=0.0), []
    first_posted, lock_free = threading.Event(), threading.Event()

    def worker():
        loop.deliver(ran.append, 1)  # the lock is held: posted
        first_posted.set()
        lock_free.wait(5)
        loop.deliver(ran.append, 2)  # the lock is free, but 1 has not run yet: posted behind it

    loop.lock.acquire()  # the loop's thread is releasing a batch
    thread = threading.Thread(target=worker)
    thread.start()
    first_posted.wait(5)
    loop.lock.release()
    lock_free.set()
    thread.join()
    assert ran == []
    for _ in range(2):
        loop.call(*loop.wait_next())
    assert ran == [1, 2]
    thread = threading.Thread(target=loop.deliver, args=(ran.append, 3))  # nothing pending, lock free: at once
    thread.start()
    thread.join()
    assert ran == [1, 2, 3]


def test_the_loops_thread_rings_each_held_bell_once_and_any_number_of_them():
    from staronnx_cli.runtime.loop import RealLoop

    loop = RealLoop(lead_s=0.0)
    loop.start_clock(issuer=False)
    bells = [Bell() for _ in range(70)]  # more than the native call rings itself
    for bell in bells + bells[:5]:
        loop.ring(bell)
    assert len(loop.held_rings) == 70 and all(b.value() == 0 for b in bells)
    loop._heap.append((0.0, 0, lambda: None, ()))  # a release due now: the held bells are rung first
    loop.wait_next()
    assert [b.value() for b in bells] == [1] * 70
    rings = [Bell() for _ in range(70)]
    Bell().wait_until(0, time.perf_counter() + 0.001, rings=rings)
    assert [b.value() for b in rings] == [1] * 70
    loop.stop_clock()


def test_workers_poll_only_where_each_has_a_core_and_one_is_left():
    from staronnx_cli.runtime.hotwait import spare_cores

    assert spare_cores([(0,)], [0, 1]) == 1
    assert spare_cores([(0,), (1,)], [0, 1]) == 0
    assert spare_cores([(0,), ()], [0, 1]) == 0  # a GPU worker's thread, pinned nowhere, polls on a core too
    assert spare_cores([(0, 1)], [0, 1, 2, 3]) == 2
