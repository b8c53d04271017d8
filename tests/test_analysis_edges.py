"""The analysis at its edges, exact on hand-made points: what a mutation run found no test holding (a sentence or a
flag a user reads wrong when a comparison or a bound moves by one)."""

from pathlib import Path

import pandas as pd
import pytest

from staronnx_cli.analysis import envelope as env
from staronnx_cli.analysis.noise import noise_warnings
from staronnx_cli.analysis.summary import saturation, summary
from staronnx_cli.analysis.verdict import _rates, least_latency_at, ms, qps, run_verdict, split_verdict
from staronnx_cli.errors import UserError
from staronnx_cli.results.read import Run
from staronnx_cli.results.runmeta import RunMeta

COLUMNS = ["batch_size", "rate_qps", "batches", "mean_max_latency_ms", "std_max_latency_ms", "congested"]


def run_of(rows: list[tuple], parts: int = 1, extra: dict | None = None, **meta) -> Run:
    """A run of hand-made points: (N, rate, batches, latency ms, std ms, congested) and `extra` columns."""
    points = pd.DataFrame(rows, columns=COLUMNS)
    for column, values in (extra or {}).items():
        points[column] = values
    return Run(Path(f"run{parts}"), RunMeta(schema_version=3, parts=parts, model_sha256="m",
                                            offload_fraction=0.1 if parts > 1 else 0.0, **meta), points)


def test_a_batch_size_congested_everywhere_and_one_never_congested_are_each_said_as_such():
    run = run_of([(1, 10, 10, 5.0, 0.1, False), (4, 10, 10, None, None, True)])
    assert run_verdict(run)[1] == ("Saturation (rho_max, the highest uncongested rate of the grid): N=1 above 10 q/s "
                                   "(never congested in the grid), N=4 congested at every rate.")
    failed = run_of([(1, 10, 10, 5.0, 0.1, False), (4, 10, 0, None, None, False)])  # no batch of N=4 ran
    assert run_verdict(failed)[1].endswith("N=4 failed.")


def test_the_failed_flag_is_a_batch_size_that_ran_nothing_anywhere_and_old_runs_get_a_capacity():
    run = run_of([(1, 10, 0, None, None, False), (1, 20, 10, 5.0, 0.1, False), (2, 10, 0, None, None, False),
                  (2, 20, 0, None, None, False)], extra={"service_ms": [10.0] * 4},
                 worker_cores={"cpu0": [0], "cpu1": [1]})
    rows = {r["batch_size"]: r for r in saturation(run)}
    assert (rows[1]["failed"], rows[1]["rho_max_qps"]) == (False, 20.0)  # failed once, served later
    assert (rows[2]["failed"], rows[2]["rho_max_qps"]) == (True, None)
    # no capacity_qps column (runs before it): N x workers / S(N) = 2 x 2 / 10 ms
    assert rows[2]["capacity_qps"] == 400.0 and rows[1]["capacity_qps"] == 200.0


@pytest.mark.parametrize("capacity, rho, warned", [(380.0, 390.0, False), (380.0, 392.0, True), (0.5, 0.6, True)])
def test_a_rate_beyond_the_capacity_is_called_out_only_beyond_what_the_grid_resolves(capacity, rho, warned):
    run = run_of([(1, rho, 10, 5.0, 0.1, False), (1, rho * 1.5, 10, None, None, True)],
                 extra={"capacity_qps": [capacity] * 2})
    said = [w for w in noise_warnings(run) if "sustained more than their capacity" in w]
    assert bool(said) == warned


def test_the_batch_size_most_beyond_its_capacity_is_the_one_named():
    run = run_of([(1, 200, 10, 5.0, 0.1, False), (2, 420, 10, 6.0, 0.1, False)],
                 extra={"capacity_qps": [100.0, 400.0]})
    said = [w for w in noise_warnings(run) if "sustained more than their capacity" in w]
    assert said == ["2 batch size(s) sustained more than their capacity (most: N=1 at 200 q/s, 2.00 x its 100.0 "
                    "q/s): S(N) was measured in a slow spell, so ideals and capacities are too pessimistic: sweep "
                    "again on a quiet machine"]


def test_late_releases_warn_from_a_millisecond_of_p99_lateness():
    def warned(p99_us: float) -> bool:
        run = run_of([(1, 10, 10, 5.0, 0.1, False)], extra={"release_lateness_p99_us": [p99_us]})
        return any("released late" in w for w in noise_warnings(run))

    assert not warned(1000.0) and warned(1500.0)


def test_unsteady_calibrations_beyond_four_are_counted_and_the_worst_names_its_runs():
    wide = [{"batch_size": n, "kind": "cpu:1", "spread": 0.2 + n / 100, "runs": 10 + n} for n in range(1, 6)]
    run = run_of([(1, 10, 10, 5.0, 0.1, False)], calibration=wide)
    said = next(w for w in noise_warnings(run) if w.startswith("S(N) was measured unsteadily"))
    assert "N=4 on cpu:1 24% and 1 more; interquartile range over median of 15 runs" in said
    at_the_bar = run_of([(1, 10, 10, 5.0, 0.1, False)],
                        calibration=[{"batch_size": 1, "kind": "cpu:1", "spread": 0.10, "runs": 10}])
    assert not any(w.startswith("S(N) was measured unsteadily") for w in noise_warnings(at_the_bar))


def test_a_point_at_nine_tenths_of_its_ideal_is_not_called_faster_than_it():
    def warned(ratio: float) -> bool:
        run = run_of([(1, 10, 10, 5.0, 0.1, False)], extra={"latency_over_ideal": [ratio]})
        return any("ran faster than their ideal" in w for w in noise_warnings(run))

    assert not warned(0.90) and warned(0.89)


def test_a_split_one_grid_step_above_the_whole_model_did_not_raise_saturation():
    whole = run_of([(1, 100, 10, 5.0, 0.1, False), (1, 105, 10, None, None, True)])
    split = run_of([(1, 100, 10, 5.0, 0.1, False), (1, 105, 10, 5.0, 0.1, False), (1, 110, 10, None, None, True)],
                   parts=2)
    assert split_verdict([whole], split).startswith(
        "Splitting (2 parts, 10% of the compute offloaded) did not raise saturation: 100 q/s whole, 105 q/s split "
        "(+5%, within the 5% these sweeps resolve).")


def test_the_envelope_keeps_a_tie_and_drops_a_rate_below_one_query_per_second_where_another_n_was_faster():
    tie = run_of([(1, 20, 10, 7.0, 0.1, False), (2, 10, 10, 7.0, 0.1, False)]).points
    assert list(env.envelope(tie).itertuples(index=False, name=None))[0][:3] == (10, 2, 7.0)
    slow = run_of([(1, 2, 10, 5.0, 0.1, False), (2, 0.5, 10, 2000.0, 1.0, False)]).points
    assert list(env.envelope(slow).rate_qps) == [2.0]  # N=1 below its lowest rate: 5 ms, not N=2's 2 s


def test_the_whole_models_latency_is_read_at_its_lowest_rate_and_on_a_line_between_two_points():
    points = run_of([(1, 10, 10, 5.0, 0.1, False), (1, 20, 10, 5.5, 0.1, False),
                     (1, 30, 10, 10.0, 0.1, False)]).points
    assert least_latency_at(points, 10) == (5.0, False)
    assert least_latency_at(points, 15) == (pytest.approx(5.25), True)  # 20 -> 30 q/s bends, 10 -> 20 does not
    assert least_latency_at(points, 25) is None


def test_numbers_in_words_at_their_bounds():
    assert (ms(100), ms(99.96), ms(10), ms(1), ms(0.5)) == ("100", "100.0", "10.0", "1.00", "0.500")
    assert (qps(1e-7), qps(1000), qps(999.9), qps(0.001)) == ("0.0000001", "1000", "999.9", "0.001")
    assert (_rates([10]), _rates([10, 20]), _rates([10, 20, 30])) == ("10 q/s", "10 and 20 q/s", "10, 20 and 30 q/s")
    assert _rates([10, 20, 30, 40]) == "4 rates from 10 to 40 q/s"


def test_the_summary_rounds_measured_over_ideal_to_four_digits():
    run = run_of([(1, 10, 10, 12.5, 0.1, False)], extra={"ideal_latency_ms": [6.0]})
    assert summary(run)["best"][0]["latency_over_ideal"] == 2.0833


def test_fleet_names_the_kind_whose_measured_latency_wins_even_where_another_of_its_batch_sizes_bends():
    """Kind A measured 50 ms at 30 q/s (N=1), its N=2 bending between 28 and 32 q/s; kind B measured 60 ms: B was
    named best once A's least latency became unknown there."""
    from staronnx_cli.analysis.fleet import FleetRun, fleet_answer

    a = run_of([(1, 30, 10, 50.0, 0.1, False), (1, 40, 10, None, None, True), (2, 28, 10, 40.0, 0.1, False),
                (2, 32, 10, 80.0, 0.1, False), (2, 40, 10, None, None, True)], model_name="m")
    b = run_of([(1, 30, 10, 60.0, 0.1, False), (1, 40, 10, None, None, True)], model_name="m")
    runs = [FleetRun("s", "a", a), FleetRun("s", "b", b)]
    assert "m at 30 q/s: a (s) at most 50.0 ms worst-case." in fleet_answer(runs)


def test_a_split_that_failed_everywhere_and_a_branch_plan_are_said_as_such():
    """A split whose every point failed read 'had no uncongested point' (as if it were too slow), and a branch plan
    was '4 parts, 49% of the compute offloaded' (nothing is offloaded in branches): an own-model walk."""
    whole = run_of([(1, 100, 10, 5.0, 0.1, False), (1, 105, 10, None, None, True)])
    failed = run_of([(1, 100, 0, None, None, False), (1, 105, 0, None, None, False)], parts=2)
    assert split_verdict([whole], failed) == ("The split (2 parts, 10% of the compute offloaded) failed at every point "
                                              "(no batch ran; its errors column says why): no comparison.")
    congested = run_of([(1, 100, 10, None, None, True)], parts=2)
    assert split_verdict([whole], congested).endswith("had no uncongested point: no comparison.")
    branches = run_of([(1, 100, 10, 5.0, 0.1, False)], parts=4, split_method="branches")
    assert split_verdict([whole], branches).startswith("Splitting (4 parts in parallel branches): ")


def test_tracing_a_run_whose_every_point_failed_says_so():
    """'no uncongested point matching that: give --batch-size and --rate' sent the user looking for a point."""
    from staronnx_cli.plots.figures import pick_point

    failed = run_of([(1, 100, 0, None, None, False), (2, 100, 0, None, None, False)])
    with pytest.raises(UserError, match="every point failed .* nothing to trace"):
        pick_point(failed, None, None)
    with pytest.raises(UserError, match="no uncongested point matching that"):
        pick_point(run_of([(1, 100, 10, None, None, True)]), None, None)


def test_tasks_slowed_at_low_load_are_said_with_the_idle_machine_as_the_cause():
    """At 100 q/s a tiny model's 3-part split ran 0.31-0.36 ms per batch for an S(N) of 0.11 ms measured back to back
    (advise's confirmations predicted 0.107 ms): cores idle between batches run the next one slower. Said for the
    points at or below 0.3 of capacity whose median task_over_s is 1.5 or more; not for busier points, nor a
    simulation."""
    rows = [(1, 10, 10, 0.4, 0.1, False), (1, 20, 10, 0.4, 0.1, False), (1, 50, 10, 0.2, 0.1, False),
            (2, 10, 10, 0.5, 0.1, False)]
    extra = {"task_over_s": [3.0, 2.6, 3.5, 1.6], "capacity_qps": [100.0, 100.0, 100.0, 200.0],
             "service_ms": [0.11, 0.11, 0.11, 0.2]}
    said = [s for s in run_verdict(run_of(rows, extra=extra)) if s.startswith("At low load")]
    assert said == ["At low load the tasks ran 2.8 x S(N) (N=1 from 10 to 20 q/s, S(N) 0.110 ms back to back, N=2 "
                    "1.6 x): cores left idle between batches run the next one slower (power saving, a virtual CPU "
                    "put to sleep, caches emptied by other work), so the latency there is the idle machine's; where "
                    "power saving is the cause, a performance CPU governor or shallower idle states narrow it."]
    calm = {**extra, "task_over_s": [1.4, 1.4, 3.5, 1.2]}  # 50 q/s is half the capacity: not low load
    assert not [s for s in run_verdict(run_of(rows, extra=calm)) if s.startswith("At low load")]
    assert not [s for s in run_verdict(run_of(rows, extra=extra, engine="sim")) if s.startswith("At low load")]
