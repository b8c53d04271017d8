"""On a GPU only (skipped elsewhere): the GPU worker's real CUDA calls on tiny models. `make gpu-check` runs these
first; everything they rest on (buffers, tolerances, fits, streams) is tested without a GPU in test_gpu_logic.py."""

import os

import numpy as np
import onnxruntime as ort
import pytest

from staronnx_cli.ortenv import cuda_status

pytestmark = pytest.mark.skipif(not cuda_status().usable, reason="no usable CUDA here")


def _executor(spec: str, part_files, batch: int):
    from staronnx_cli.runtime.executors import ThreadExecutor
    from staronnx_cli.runtime.loop import RealLoop
    from staronnx_cli.runtime.workers import parse_workers

    return ThreadExecutor(RealLoop(), parse_workers(spec, sorted(os.sched_getaffinity(0)), True), part_files, batch)


def test_a_gpu_worker_runs_a_cuda_graph_equal_to_the_cpu_session_and_measures_its_link(tiny_cnn_path):
    from staronnx_cli.runtime.cudagraph import outputs_differ

    executor = _executor("cuda:0", [tiny_cnn_path], 4)
    try:
        assert executor.graph_notes == ["cuda0 part 0: CUDA graph"], executor.graph_notes
        link = executor.links["cuda0"]
        assert 1e9 < link.bandwidth_Bps < 1e12 and 0 <= link.latency_s < 1e-3, link
        runner = executor.runners[0][0]
        feeds = {name: runner.inputs.batch(name, 4) for name in runner.input_names[0]}
        got = runner.run(0, feeds, set(runner.output_names[0]))
        cpu = ort.InferenceSession(str(tiny_cnn_path), providers=["CPUExecutionProvider"])
        want = dict(zip(runner.output_names[0], cpu.run(None, {n: executor.inputs[0][n] for n in feeds})))
        for name, value in want.items():
            assert outputs_differ(got[name], value, name) == ""
        assert np.isfinite(executor.service_time(0, 4, 1, runs=5))
    finally:
        executor.close()


def test_two_workers_on_one_gpu_pass_parts_on_the_device_and_a_cpu_worker_fetches_from_it(cli, tiny_cnn_path,
                                                                                          tmp_path):
    plan = tmp_path / "plan"
    assert cli("split", tiny_cnn_path, "--offload", "0.3", "--parts", "2", "--method", "topo", "-o", plan
               ).exit_code == 0
    for workers, policy in (("cuda:0x2", "dmda"), ("cuda:0,cpu:1x1", "static:cuda,cpu")):
        out = tmp_path / workers.replace(":", "_").replace(",", "_")
        result = cli("sweep", plan, "--workers", workers, "--policy", policy, "--batch", "2", "--rate", "50",
                     "--batches", "10", "--warmup", "2", "-o", out)
        assert result.exit_code == 0, result.stdout + result.stderr
        import pandas as pd

        points = pd.read_csv(out / "points.csv")
        assert not points.congested.any() and (points.errors.fillna("") == "").all()
        placements = " ".join(pd.read_csv(out / "batches.csv").placement.astype(str))
        if policy.startswith("static"):
            assert "0:cuda0" in placements and "1:cpu0" in placements  # part 1 read part 0's tensor off the GPU
