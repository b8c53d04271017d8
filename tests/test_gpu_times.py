"""GPU time per node from CUPTI records, on real recordings from an H100 (tests/data/h100_googlenet) and on
hand-made events whose answer is known exactly."""

import json
from pathlib import Path

import pytest

from staronnx_cli.profile.gpu_times import (
    ApiCall,
    GpuActivity,
    GpuRecording,
    attribute_gpu_activity,
    read_recording,
    write_recording,
)
from staronnx_cli.profile.trace import KernelEvent, Trace, load_trace

H100 = Path(__file__).parent / "data" / "h100_googlenet"
META = json.loads((H100 / "meta.json").read_text())


def recorded(batch: int):
    trace = load_trace(H100 / f"ort_b{batch}.json.gz")
    recording = read_recording(H100 / f"cupti_b{batch}.json.gz")
    info = META[str(batch)]
    measured = list(range(info["warmup_runs"], info["warmup_runs"] + info["runs"]))
    return trace, recording, attribute_gpu_activity(trace, info["profiling_start_ns"], recording), measured


@pytest.mark.parametrize("batch, kernels, low_ms, high_ms", [(1, 236, 0.74, 0.75), (32, 244, 2.88, 2.92)])
def test_every_kernel_of_every_run_reaches_its_node(batch, kernels, low_ms, high_ms):
    trace, recording, times, measured = recorded(batch)
    assert list(times.runs) == measured  # CUPTI recorded the measured runs only, none is missing
    assert times.unmatched == 0 and times.attributed_fraction == 1.0
    for run in measured:
        totals = times.runs[run]
        assert totals.kernels == totals.kernels_in_nodes == kernels
    per_run_ms = sum(times.runs[r].kernel_us for r in measured) / len(measured) / 1000
    assert low_ms <= per_run_ms < high_ms
    assert sum(a.kind == "kernel" for a in recording.activities) == kernels * len(measured)


def test_conv1_is_the_largest_node_at_batch_32_and_convs_scale_with_the_batch():
    _, _, big, measured = recorded(32)
    _, _, small, _ = recorded(1)

    def mean(times, node):
        return sum(times.per_kernel[node].get(r, 0.0) for r in measured) / len(measured)

    ranked = sorted(big.per_kernel, key=lambda n: -mean(big, n))
    assert ranked[:2] == ["conv1.conv", "conv3.conv"]
    assert 420 < mean(big, "conv1.conv") < 435  # 429 us on the H100, as measured with its profiler
    assert mean(big, "conv1.conv") > 10 * mean(small, "conv1.conv")


def test_host_times_are_launch_times_flat_in_the_batch_size_while_gpu_time_is_not():
    sums = {}
    for batch in (1, 32):
        trace, _, times, measured = recorded(batch)
        host = sum(k.dur_us for k in trace.kernels if k.run in measured) / len(measured)
        gpu = sum(times.runs[r].node_us for r in measured) / len(measured)
        sums[batch] = (host, gpu)
    (host1, gpu1), (host32, gpu32) = sums[1], sums[32]
    assert 0.8 < host32 / host1 < 1.25  # launch time barely moves with the batch
    assert gpu32 / gpu1 > 3.5 and host1 > 4 * gpu1


def test_input_and_output_copies_belong_to_the_run_not_to_a_node():
    _, recording, times, measured = recorded(32)
    copies = [a for a in recording.activities if a.kind == "memcpy"]
    assert {a.name.split()[1] for a in copies} == {"HtoD", "DtoH"}
    outside = sum(times.runs[r].outside_us for r in measured)
    assert outside == pytest.approx(sum(a.dur_ns for a in copies) / 1000)


# -- exact logic on hand-made events (times in ns; the profiling start is 1_000_000) --------------------------

START = 1_000_000


def trace_of(*nodes, runs=((0, 100),)):
    """nodes: (name, run, ts_us, dur_us)"""
    return Trace(list(runs), [KernelEvent(run, name, "Conv", "CUDAExecutionProvider", dur, 0, ts)
                              for name, run, ts, dur in nodes])


def at_us(us: float) -> int:
    return START + int(us * 1000)


def test_a_launch_inside_a_node_gives_that_node_the_gpu_duration_not_the_launch_time():
    trace = trace_of(("a", 0, 10, 5), ("b", 0, 20, 5))
    recording = GpuRecording([ApiCall(1, at_us(12)), ApiCall(2, at_us(21)), ApiCall(3, at_us(22))],
                             [GpuActivity("kernel", 1, at_us(50), at_us(80)),   # ran long after its launch
                              GpuActivity("kernel", 2, at_us(80), at_us(81)),
                              GpuActivity("memset", 3, at_us(81), at_us(83))])
    times = attribute_gpu_activity(trace, START, recording)
    assert times.per_kernel == {"a": {0: 30.0}, "b": {0: 3.0}}
    assert (times.runs[0].kernels, times.runs[0].kernels_in_nodes, times.runs[0].kernel_us) == (2, 2, 31.0)


def test_launches_between_nodes_outside_runs_or_unknown_are_kept_apart():
    trace = trace_of(("a", 0, 10, 5), ("a", 1, 210, 5), runs=((0, 100), (200, 300)))
    recording = GpuRecording(
        [ApiCall(1, at_us(2)), ApiCall(2, at_us(16.5)), ApiCall(3, at_us(18)), ApiCall(4, at_us(150)),
         ApiCall(5, at_us(211))],
        [GpuActivity("memcpy", 1, at_us(3), at_us(7), "HtoD"),  # the run's input copy, before any node
         GpuActivity("kernel", 2, at_us(20), at_us(24)),  # 1.5 us past a's end: a's (ORT truncates to us)
         GpuActivity("kernel", 3, at_us(24), at_us(25)),  # 3 us past the end: no node's
         GpuActivity("kernel", 4, at_us(151), at_us(152)),  # between runs
         GpuActivity("kernel", 9, at_us(160), at_us(161)),  # no launch record
         GpuActivity("kernel", 5, at_us(212), at_us(220))])
    times = attribute_gpu_activity(trace, START, recording)
    assert times.per_kernel == {"a": {0: 4.0, 1: 8.0}}
    assert times.runs[0].outside_us == 5.0 and times.runs[0].kernels_in_nodes == 1
    assert (times.unmatched, times.unmatched_us) == (2, 2.0)
    assert times.attributed_fraction == pytest.approx(1 - 2 / 19)
    assert "2 of 6 GPU activities" in times.notes[0]


def test_cupti_clock_offset_and_repeated_correlations():
    trace = trace_of(("a", 0, 10, 5), ("b", 0, 20, 5))
    offset = 7_000  # CUPTI's clock runs 7 us ahead of the wall clock
    recording = GpuRecording([ApiCall(1, at_us(21) + offset, "cuLaunchKernel"),  # inner driver call: in b
                              ApiCall(1, at_us(12) + offset, "cudaLaunchKernel")],  # outer runtime call: in a
                             [GpuActivity("kernel", 1, at_us(30) + offset, at_us(31) + offset)], offset)
    assert attribute_gpu_activity(trace, START, recording).per_kernel == {"a": {0: 1.0}}


def test_a_recording_reads_back_exactly(tmp_path):
    recording = read_recording(H100 / "cupti_b1.json.gz")
    write_recording(recording, tmp_path / "r.json.gz")
    again = read_recording(tmp_path / "r.json.gz")
    assert again == recording and again.source.startswith("PyTorch profiler")


def test_a_broken_recording_is_a_user_error(tmp_path):
    from staronnx_cli.errors import UserError

    bad = tmp_path / "r.json.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(UserError, match="cannot read GPU recording"):
        read_recording(bad)
