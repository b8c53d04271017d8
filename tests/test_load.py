"""Arrival processes and batch formation: plain arrays, exact."""

import numpy as np
import pytest

from staronnx_cli.errors import UserError
from staronnx_cli.load.schedule import arrivals, batch_schedule, dynamic_batch_schedule


def test_fixed_arrivals_and_the_papers_batches():
    times = arrivals("fixed", 100.0, 9)
    s = batch_schedule(times, 3)
    assert s.release_s.tolist() == pytest.approx([0.02, 0.05, 0.08])  # at the last query's arrival
    assert s.sizes.tolist() == [3, 3, 3] and s.first_query.tolist() == [0, 3, 6]


def test_poisson_arrivals_are_seeded_and_have_the_mean_rate():
    a, b = arrivals("poisson", 200.0, 20_000, seed=7), arrivals("poisson", 200.0, 20_000, seed=7)
    assert np.array_equal(a, b) and not np.array_equal(a, arrivals("poisson", 200.0, 20_000, seed=8))
    assert a[0] == 0.0 and np.all(np.diff(a) >= 0)
    assert (len(a) - 1) / a[-1] == pytest.approx(200.0, rel=0.001)
    gaps = np.diff(a)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # exponential gaps: Poisson's bursts kept


def test_poisson_arrivals_come_at_the_rate_asked_for_in_each_block_however_short():
    """Free Poisson arrivals over 40 queries came at 80 % of the rate (seed 1): a point's window is conditioned on
    its count, so the warm-up and each window of measured batches offer exactly the rate asked for."""
    for seed in range(20):
        a = arrivals("poisson", 200.0, 100, seed=seed, blocks=[15, 40])
        assert a[0] == 0.0 and np.all(np.diff(a) >= 0) and len(a) == 100
        assert np.histogram(a, bins=[0.0, 0.075, 0.275, 0.5])[0].tolist() == [15, 40, 45]
    assert not np.allclose(np.diff(arrivals("poisson", 200.0, 100, seed=1, blocks=[15, 40])), 0.005)


def test_a_trace_keeps_its_shape_and_is_scaled_to_the_rate(tmp_path):
    trace = tmp_path / "arrivals.txt"
    trace.write_text("10.0\n10.1\n10.4\n")  # gaps 0.1, 0.3: mean gap 0.2 s
    times = arrivals(f"trace:{trace}", 50.0, 5)  # mean gap 20 ms: everything scaled by 0.1
    assert times.tolist() == pytest.approx([0.0, 0.01, 0.04, 0.06, 0.07])
    trace.write_text("3\n1\n")
    with pytest.raises(UserError, match="non-decreasing"):
        arrivals(f"trace:{trace}", 50.0, 5)
    with pytest.raises(UserError, match="--arrival 'bursty'"):
        arrivals("bursty", 50.0, 5)
    # internal errors before: a 2-D array's truth value; an overflowing span scaled to NaN
    for text, message in (("0 1\n2 3\n", "has 2 numbers per line"), ("-1e308\n1e308\n", "more than a number holds")):
        trace.write_text(text)
        with pytest.raises(UserError, match=message):
            arrivals(f"trace:{trace}", 50.0, 5)


def test_dynamic_batching_closes_a_batch_when_full_or_when_its_first_query_waited_long_enough():
    times = np.array([0.0, 0.001, 0.002, 0.010, 0.030, 0.031, 0.032, 0.033])
    s = dynamic_batch_schedule(times, 3, 0.005)
    assert s.sizes.tolist() == [3, 1, 3, 1]
    assert s.first_query.tolist() == [0, 3, 4, 7]
    assert s.release_s.tolist() == pytest.approx([0.002, 0.015, 0.032, 0.038])  # full / timed out
    assert s.first_arrival_s.tolist() == pytest.approx([0.0, 0.010, 0.030, 0.033])
    # at a fixed rate fast enough to fill batches within the delay, it is the paper's batching
    fast = arrivals("fixed", 1000.0, 12)
    same = dynamic_batch_schedule(fast, 4, 0.010)
    assert same.release_s.tolist() == pytest.approx(batch_schedule(fast, 4).release_s.tolist())
    with pytest.raises(UserError, match="negative"):
        dynamic_batch_schedule(times, 3, -1.0)


def test_poisson_without_a_warm_up_block_and_dynamic_batching_at_its_bounds():
    """A block of 0 queries (--warmup 0) is no block; N=1 and --max-queue-delay 0 are valid settings; a trace of two
    times is enough (the edges a mutation run found untested)."""
    from staronnx_cli.load.schedule import poisson

    np.testing.assert_array_equal(poisson(100, 10, 0, [0, 10]), poisson(100, 10, 0, [10]))
    ones = dynamic_batch_schedule(np.array([0.0, 0.001, 0.002]), 1, 0.005)
    assert list(ones.sizes) == [1, 1, 1]
    at_once = dynamic_batch_schedule(np.array([0.0, 0.001, 0.002]), 3, 0.0)
    assert list(at_once.sizes) == [1, 1, 1] and list(at_once.release_s) == [0.0, 0.001, 0.002]


def test_a_trace_of_two_times_is_a_pattern(tmp_path):
    from staronnx_cli.load.schedule import from_trace

    (tmp_path / "t.txt").write_text("0\n1\n")
    assert list(from_trace(tmp_path / "t.txt", 4)) == [0.0, 1.0, 2.0, 3.0]
