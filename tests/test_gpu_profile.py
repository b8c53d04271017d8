"""`profile --device cuda` without a GPU: costs rows built from real H100 recordings, the trust check on
CUPTI's records, CUPTI's recorder driven by a stand-in of the cupti module (the real one needs a GPU), the
one-line reasons when CUPTI cannot load, and `split` on GPU and on host-launch costs."""

import enum
import json
import time
from pathlib import Path
from types import SimpleNamespace

import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from conftest import assert_one_line_error

from staronnx_cli import modelio
from staronnx_cli.devices import Device
from staronnx_cli.kinds import CPU, CUDA
from staronnx_cli.profile import cupti_recorder
from staronnx_cli.profile.costs import read_costs, timing_of, write_costs
from staronnx_cli.profile.gpu_times import GpuRecording, attribute_gpu_activity, read_recording
from staronnx_cli.profile.profiler import _checked, _gpu_recorder
from staronnx_cli.profile.rows import node_rows
from staronnx_cli.profile.trace import load_trace
from staronnx_cli.zoo.cache import build_cached

H100 = Path(__file__).parent / "data" / "h100_googlenet"
META = json.loads((H100 / "meta.json").read_text())
MEASURED = list(range(5, 15))


@pytest.fixture(scope="module")
def googlenet(tmp_path_factory):
    """The zoo googlenet the recordings were made on, and ORT's level-basic graph of it (names as on CUDA)."""
    path = build_cached("googlenet")[0]
    optimised = tmp_path_factory.mktemp("opt") / "basic.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(optimised)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return path, modelio.load_model(path), onnx.load(optimised, load_external_data=False)


def recorded(batch):
    trace = load_trace(H100 / f"ort_b{batch}.json.gz")
    return trace, read_recording(H100 / f"cupti_b{batch}.json.gz"), META[str(batch)]["profiling_start_ns"]


def gpu_rows(googlenet, batch):
    _, model, optimised = googlenet
    trace, recording, start = recorded(batch)
    return node_rows(model, optimised, trace, MEASURED, "cuda:0", batch,
                     attribute_gpu_activity(trace, start, recording))


@pytest.fixture(scope="module")
def gpu_costs(googlenet, tmp_path_factory):
    path = tmp_path_factory.mktemp("costs") / "costs.csv"
    rows = gpu_rows(googlenet, 1) + gpu_rows(googlenet, 32)
    write_costs(path, rows, {"model": str(googlenet[0]), "model_sha256": modelio.sha256_of(googlenet[0]),
                             "device": "cuda:0", "timing": ["gpu"]})
    return path


@pytest.mark.parametrize("batch", [1, 32])
def test_node_sums_equal_the_gpu_kernel_time_per_run(googlenet, batch):
    trace, recording, start = recorded(batch)
    kernel_us = sum(r.kernel_us for r in attribute_gpu_activity(trace, start, recording).runs.values()) / 10
    rows = pd.DataFrame(gpu_rows(googlenet, batch))
    assert set(rows.timing) == {"gpu"} and (rows.runs == 10).all()
    assert rows.mean_us.sum() == pytest.approx(kernel_us, rel=0.05)
    assert rows.host_us.sum() > rows.mean_us.sum() if batch == 1 else True  # launch time dwarfs GPU time at 1
    compute = rows[rows.how != "folded"]
    assert (compute.host_us > 0).all()
    assert set(compute[compute.mean_us == 0].op_type) == {"Flatten"}  # a view: launches nothing on the GPU


def test_conv1_is_the_most_expensive_original_node_at_batch_32(googlenet):
    rows = pd.DataFrame(gpu_rows(googlenet, 32)).sort_values("mean_us", ascending=False)
    assert list(rows.node[:2]) == ["conv1.conv", "conv3.conv"]
    bn = rows.set_index("node").loc["conv1.bn"]  # folded into conv1 by ORT: a small share of its GPU time
    assert bn.how == "fused" and 0 < bn.mean_us < 0.05 * rows.mean_us.iloc[0]


def test_without_cupti_cuda_kernels_are_marked_host_launch(googlenet):
    _, model, optimised = googlenet
    trace, _, _ = recorded(1)
    rows = pd.DataFrame(node_rows(model, optimised, trace, MEASURED, "cuda:0", 1, None))
    assert set(rows.timing) == {"host-launch"}
    assert (rows.mean_us == rows.host_us).all()


def test_cupti_records_are_trusted_only_when_they_match_the_runs():
    trace, recording, start = recorded(1)
    times, note = _checked(trace, start, recording, MEASURED)
    assert times is not None and note == ""
    no_launches = GpuRecording([], recording.activities)
    assert _checked(trace, start, no_launches, MEASURED)[0] is None
    assert "could not be matched" in _checked(trace, start, no_launches, MEASURED)[1]
    assert "no GPU kernel" in _checked(trace, start, GpuRecording([], []), MEASURED)[1]
    shifted = GpuRecording(recording.api_calls, recording.activities, cupti_minus_wall_ns=10**9)  # a wrong clock
    assert _checked(trace, start, shifted, MEASURED)[0] is None


# -- CUPTI's recorder ---------------------------------------------------------------------------------------------

def test_cupti_unavailable_is_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setattr(cupti_recorder, "cupti_version", lambda: "")
    recorder, note = _gpu_recorder(Device(CUDA, 0))
    assert recorder is None and "cupti-python is not installed: " in note and "[cuda13]' or " in note
    monkeypatch.setattr(cupti_recorder, "cupti_version", lambda: "12.8.0")
    monkeypatch.setattr(cupti_recorder, "_cuda_major_of_ort", lambda: "13")
    with pytest.raises(cupti_recorder.CuptiUnavailable, match="for CUDA 12 but this ONNX Runtime is built for CUDA 13"):
        cupti_recorder.load_cupti()
    assert _gpu_recorder(Device(CPU, 1)) == (None, "")


class FakeCupti:
    """The parts of cupti-python's `cupti` module the recorder uses; `flush` replays a recording's records."""

    ActivityKind = enum.IntEnum("ActivityKind", "CONCURRENT_KERNEL MEMCPY MEMSET RUNTIME DRIVER")
    ActivityFlag = enum.IntEnum("ActivityFlag", "FLUSH_FORCED")
    CallbackDomain = enum.IntEnum("CallbackDomain", "RUNTIME_API DRIVER_API")
    ActivityMemcpyKind = enum.IntEnum("ActivityMemcpyKind", "HTOD DTOH")
    OFFSET = 5_000

    def __init__(self, replay: GpuRecording, refuse_after: int | None = None):
        self.replay, self.refuse_after, self.enabled, self.callbacks = replay, refuse_after, set(), None

    def activity_register_callbacks(self, requested, completed):
        self.callbacks = (requested, completed)

    def activity_enable(self, kind):
        if self.refuse_after is not None and len(self.enabled) >= self.refuse_after:
            raise RuntimeError("CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED")
        self.enabled.add(kind)

    def activity_disable(self, kind):
        self.enabled.discard(kind)

    def get_timestamp(self):
        return time.time_ns() + self.OFFSET

    def get_callback_name(self, domain, cbid):
        return f"{domain.name}:{cbid}"

    def activity_flush_all(self, flag):
        assert flag == self.ActivityFlag.FLUSH_FORCED and len(self.enabled) == 5
        kinds = {"kernel": self.ActivityKind.CONCURRENT_KERNEL, "memcpy": self.ActivityKind.MEMCPY,
                 "memset": self.ActivityKind.MEMSET}
        records = [SimpleNamespace(kind=self.ActivityKind.RUNTIME, correlation_id=c.correlation, start=c.start_ns,
                                   cbid=7) for c in self.replay.api_calls]
        records += [SimpleNamespace(kind=kinds[a.kind], correlation_id=a.correlation, start=a.start_ns, end=a.end_ns,
                                    name=a.name, bytes=a.bytes, copy_kind=self.ActivityMemcpyKind.HTOD)
                    for a in self.replay.activities]
        records.append(SimpleNamespace(kind=self.ActivityKind.CONCURRENT_KERNEL, correlation_id=1, start=0, end=0,
                                       name="incomplete", bytes=0))  # a forced flush may hand in such a record
        self.callbacks[1](records[: len(records) // 2])  # CUPTI hands buffers over in pieces
        self.callbacks[1](records[len(records) // 2:])


def test_the_recorder_copies_every_record_out_of_cuptis_buffers(monkeypatch):
    replay = read_recording(H100 / "cupti_b1.json.gz")
    fake = FakeCupti(replay)
    monkeypatch.setattr(cupti_recorder, "load_cupti", lambda: fake)
    monkeypatch.setattr(cupti_recorder._Sink, "registered", False)
    recorder = cupti_recorder.CuptiRecorder()
    assert fake.enabled == set() and fake.callbacks is not None  # probed, then off until a recording starts
    with recorder:
        assert len(fake.enabled) == 5
    got = recorder.recording
    assert fake.enabled == set()
    assert [(c.correlation, c.start_ns) for c in got.api_calls] == [(c.correlation, c.start_ns)
                                                                     for c in replay.api_calls]
    assert {c.name for c in got.api_calls} == {"RUNTIME_API:7"}
    assert [(a.kind, a.correlation, a.start_ns, a.end_ns) for a in got.activities] == [
        (a.kind, a.correlation, a.start_ns, a.end_ns) for a in replay.activities]
    assert abs(got.cupti_minus_wall_ns - FakeCupti.OFFSET) < 1_000_000  # within the bracket of two clock reads
    assert got.dropped == 1  # the record without timestamps
    with recorder:  # a second recording starts empty (callbacks registered once per process)
        pass
    assert len(recorder.recording.activities) == len(replay.activities)


def test_cupti_refusing_a_kind_is_one_line_and_leaves_nothing_enabled(monkeypatch):
    fake = FakeCupti(GpuRecording([], []), refuse_after=2)
    monkeypatch.setattr(cupti_recorder, "load_cupti", lambda: fake)
    monkeypatch.setattr(cupti_recorder._Sink, "registered", False)
    with pytest.raises(cupti_recorder.CuptiUnavailable, match="CUPTI refused to record .*MULTIPLE_SUBSCRIBERS"):
        cupti_recorder.CuptiRecorder()
    assert fake.enabled == set()  # the two kinds it had enabled are off again


def test_a_recording_that_cannot_start_falls_back_to_host_times_with_the_runs_done(monkeypatch):
    from staronnx_cli.profile.profiler import _recorded

    fake = FakeCupti(GpuRecording([], []))
    monkeypatch.setattr(cupti_recorder, "load_cupti", lambda: fake)
    monkeypatch.setattr(cupti_recorder._Sink, "registered", False)
    recorder = cupti_recorder.CuptiRecorder()
    fake.refuse_after = 0  # e.g. another profiler attached meanwhile
    runs = []
    recording, note = _recorded(recorder, lambda: runs.append(1))
    assert runs == [1] and recording is None and "CUPTI refused to record" in note


# -- split on GPU costs ---------------------------------------------------------------------------------------------

def test_split_on_gpu_costs_cuts_a_fraction_of_gpu_time(cli, gpu_costs, tmp_path):
    result = cli("split", "googlenet", "--costs", gpu_costs, "--offload", "0.15", "--batch", "32",
                 "-o", tmp_path / "plan")
    assert result.exit_code == 0, result.stdout + result.stderr
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["timing"] == "gpu" and plan["fraction_of"] == "GPU time (CUPTI) on cuda:0"
    assert abs(plan["achieved_fraction"] - 0.15) <= 0.03 and plan["verification"]["passed"]
    assert "of GPU time (CUPTI) on cuda:0" in result.stdout


def test_split_refuses_host_launch_times_unless_allowed(cli, gpu_costs, tmp_path):
    frame = read_costs(gpu_costs)
    launch = tmp_path / "launch.csv"
    write_costs(launch, frame.assign(timing="host-launch", mean_us=frame.host_us).to_dict("records"),
                json.loads(gpu_costs.with_name("costs.meta.json").read_text()))
    legacy = tmp_path / "legacy.csv"  # a costs file from before the timing column, profiled on cuda
    frame.drop(columns=["timing", "host_us"]).to_csv(legacy, index=False)
    for costs in (launch, legacy):
        assert_one_line_error(cli("split", "googlenet", "--costs", costs, "-o", tmp_path / "p"),
                              "host launch times for cuda:0, not GPU time", "--allow-host-times")
        assert not (tmp_path / "p").exists()
    result = cli("split", "googlenet", "--costs", launch, "--allow-host-times", "--no-verify", "-o", tmp_path / "p")
    assert result.exit_code == 0, result.stderr
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan["timing"] == "host-launch" and "not GPU time" in plan["fraction_of"]
    assert "cutting on host launch times" in result.stdout


def test_legacy_rows_read_as_cpu_or_host_launch_by_device():
    frame = pd.DataFrame({"device": ["cpu:2", "cuda:0"], "timing": [None, None]})
    assert list(timing_of(frame)) == ["cpu", "host-launch"]
    assert list(timing_of(frame.drop(columns=["timing"]))) == ["cpu", "host-launch"]


# -- plot --kind nodes ----------------------------------------------------------------------------------------------

def cpu_twin(gpu_costs: Path, tmp_path: Path, factor_of) -> Path:
    """A CPU costs file of the same model made by hand: each node `factor_of(op)` times its GPU time."""
    frame = read_costs(gpu_costs)
    cpu = frame.assign(device="cpu:2", timing="cpu", mean_us=[m * factor_of(op) for m, op in
                                                              zip(frame.mean_us, frame.op_type)])
    path = tmp_path / "cpu.csv"
    write_costs(path, cpu.to_dict("records"), json.loads(gpu_costs.with_name("costs.meta.json").read_text()))
    return path


def test_the_ratio_table_is_per_node_in_graph_order():
    from staronnx_cli.plots.nodes import ratio_table

    gpu = pd.DataFrame({"node": ["a", "b", "c", "d"], "op_type": ["Conv", "Relu", "Conv", "Flatten"],
                        "mean_us": [60.0, 10.0, 30.0, 0.0]})
    cpu = gpu.assign(mean_us=[6000.0, 200.0, 900.0, 5.0])
    table = ratio_table(gpu, cpu)
    assert list(table.node) == ["a", "b", "c", "d"]
    assert list(table.cpu_over_gpu[:3]) == [100.0, 20.0, 30.0] and pd.isna(table.cpu_over_gpu[3])
    assert list(table.gpu_after.round(6)) == [0.4, 0.3, 0.0, 0.0]


def test_plot_nodes_draws_one_file_or_a_cpu_gpu_pair(cli, gpu_costs, tmp_path):
    cpu = cpu_twin(gpu_costs, tmp_path, lambda op: 40.0 if op == "MaxPool" else 300.0)
    result = cli("plot", gpu_costs, "--kind", "nodes", "-o", tmp_path / "one.png")
    assert result.exit_code == 0, result.stderr
    result = cli("plot", cpu, gpu_costs, "--kind", "nodes", "--batch-size", "1", "-o", tmp_path / "two.svg")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "one.png").stat().st_size > 10_000 and "<svg" in (tmp_path / "two.svg").read_text()[:500]
    table = cli("plot", gpu_costs, cpu, "--kind", "nodes", "--table", "--format", "md", "--top", "3")
    assert table.exit_code == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if line.startswith("| ") and "MaxPool" in line]
    assert len(lines) == 3 and all("| 40.0 |" in line for line in lines)  # the CPU is least behind on pools


def test_plot_nodes_bad_input(cli, gpu_costs, tiny_cnn_path, tmp_path):
    assert_one_line_error(cli("plot", gpu_costs, gpu_costs, "--kind", "nodes"), "one CPU and one GPU costs file")
    assert_one_line_error(cli("plot", gpu_costs, "--kind", "nodes", "--batch-size", "8"),
                          "--batch-size 8", "1, 32")
    assert_one_line_error(cli("plot", gpu_costs), "is a costs file: draw it with --kind nodes")
    assert_one_line_error(cli("plot", tmp_path, "--kind", "nodes"), "is a directory")
    tiny = tmp_path / "tiny.csv"
    assert cli("profile", tiny_cnn_path, "--device", "cpu:1", "--runs", "1", "--warmup", "0", "--no-overhead",
               "-o", tiny).exit_code == 0
    assert_one_line_error(cli("plot", gpu_costs, tiny, "--kind", "nodes"), "different models")
    sidecar = tmp_path / "tiny.meta.json"
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"batches": {"1": 5}}))  # edited
    assert_one_line_error(cli("plot", tiny, "--kind", "nodes"), "is not a costs sidecar written by staronnx")
