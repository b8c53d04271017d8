"""Golden-file test of the ORT profile parser on a committed trace (tiny_cnn, batch 2, 3 runs)."""

import dataclasses
import json
from pathlib import Path

import pytest

from staronnx_cli.errors import UserError
from staronnx_cli.profile.trace import load_trace, parse_trace

DATA = Path(__file__).parent / "data"


def test_parser_matches_golden_output():
    trace = load_trace(DATA / "ort_profile_tiny_cnn.json")
    expected = json.loads((DATA / "ort_profile_tiny_cnn.expected.json").read_text())
    assert trace.runs_us == expected["runs_us"]
    assert [dataclasses.asdict(k) for k in trace.kernels] == expected["kernels"]


def test_every_run_has_the_same_kernels_in_order():
    trace = load_trace(DATA / "ort_profile_tiny_cnn.json")
    per_run = [[k.kernel for k in trace.kernels if k.run == r] for r in range(len(trace.runs_us))]
    assert len(per_run) == 3 and per_run[0] == per_run[1] == per_run[2]
    assert "conv_0" in per_run[0] and all(k.provider == "CPUExecutionProvider" for k in trace.kernels)


def test_kernels_are_assigned_to_the_run_that_contains_them():
    events = [
        {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 50},
        {"cat": "Node", "name": "init_kernel_time", "ts": 10, "dur": 5, "args": {}},  # outside any run
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 40},
        {"cat": "Node", "name": "a_kernel_time", "ts": 101, "dur": 10, "args": {"op_name": "Conv", "output_size": "8"}},
        {"cat": "Node", "name": "a_fence_before", "ts": 101, "dur": 0, "args": {}},  # not a kernel
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 30},
        {"cat": "Node", "name": "a_kernel_time", "ts": 205, "dur": 12, "args": {"op_name": "Conv"}},
    ]
    trace = parse_trace(events)
    assert trace.runs_us == [40, 30]
    assert [(k.run, k.kernel, k.dur_us, k.output_bytes) for k in trace.kernels] == [(0, "a", 10, 8), (1, "a", 12, 0)]


def test_a_file_that_is_not_a_trace_is_a_user_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        load_trace(bad)
    with pytest.raises(UserError, match="JSON list"):
        parse_trace({"traceEvents": []})
