"""`make gpu-check`'s sequence: without a GPU every step says so; with CPU layouts in place of the GPU's the whole
sequence runs and passes; a step past its cap is killed and named."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from staronnx_cli.ortenv import cuda_status

SCRIPT = Path(__file__).parents[1] / "experiments" / "gpu_check.py"


def gpu_check(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(cuda_status().usable, reason="a GPU is here")
def test_without_a_gpu_every_step_says_no_gpu_and_the_check_exits_0(tmp_path):
    done = gpu_check("--out", tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["gpu"] is False and summary["summary"] == "no GPU: nothing checked"
    assert [s["status"] for s in summary["steps"].values()] == ["no GPU"] * 7
    assert "at most 480 s in all" in done.stdout.splitlines()[0]  # each step's cap and the total, first


@pytest.mark.slow
def test_with_cpu_layouts_the_whole_sequence_runs_and_every_step_passes(tmp_path):
    done = gpu_check("--model", "tiny_transformer", "--cpu-layouts", "--out", tmp_path)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert done.returncode == 0, (done.stdout, summary)
    assert list(summary["steps"]) == ["doctor", "tests", "profile", "split-sweep", "bench", "mix", "opara"]
    assert summary["hot_path"] == "native"  # pip install built it; a checkout used in place gets it built
    assert all(s["status"] == "passed" and s["seconds"] <= s["cap_s"] for s in summary["steps"].values())
    figures = {name: s["figures"] for name, s in summary["steps"].items()}
    assert figures["tests"]["pytest"].endswith(tuple("0123456789s")) and "passed" in figures["tests"]["pytest"]
    assert len(figures["profile"]["splits"]) == 6  # three offloads at batch 1 and 32
    sweep = figures["split-sweep"]["cpu:2x1"]
    assert set(sweep["tasks_per_worker"]) == {"cpu0", "cpu1"} and sweep["rho_max_qps"] > 0
    assert set(figures["bench"]) == {"N=1", "N=8"}  # rho_max may be None on a busy machine: S(N) is always measured
    assert all(set(f) == {"native", "cpu:1x1", "cpu:2x1"} and f["native"]["S_over_native"] == 1
               for f in figures["bench"].values())
    assert set(figures["mix"]["max_latency_ms"]) == {"main", "tiny"}
    opara = figures["opara"]  # a branch plan and the whole model, both measured on the same workers
    assert opara["workers"] == "cpu:2x1" and opara["parts"] > 1 and all(opara["latency_ms"].values())
    assert opara["branches_over_whole"] > 0 and isinstance(opara["target_met"], bool)
    assert set(opara["latency_ms"]) == {"whole", "branches", "ortstreams"} and opara["ortstreams_over_whole"] > 0
    for step in summary["steps"]:  # every step's files under the one directory
        assert (tmp_path / step / "log.txt").exists() and (tmp_path / step / "result.json").exists()


def test_a_step_past_its_cap_is_killed_and_named(tmp_path):
    done = gpu_check("--cpu-layouts", "--steps", "doctor", "--cap-scale", "0.0001", "--out", tmp_path)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert done.returncode == 1 and summary["steps"]["doctor"]["status"] == "timeout"
    assert "killed at its cap" in summary["steps"]["doctor"]["error"] and summary["summary"] == "0 of 1 steps passed"
    bad = gpu_check("--steps", "doctr", "--out", tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == ("--steps: doctr unknown; the steps are doctor, tests, "
                                                          "profile, split-sweep, bench, mix, opara")
