"""The CLI through typer's CliRunner: zoo, profile, doctor, and the bad-input contract."""

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pandas as pd
import pytest
from conftest import assert_one_line_error
from test_modelio import relu_model

from staronnx_cli.ortenv import cuda_status
from staronnx_cli.profile.costs import COLUMNS, read_meta


def test_zoo_list_names_every_model(cli, tmp_path, monkeypatch):
    result = cli("zoo", "list")
    assert result.exit_code == 0
    for name in ("googlenet", "efficientnetv2_s", "nfnet_f0", "vit_b16_7", "tiny_cnn"):
        assert name in result.stdout
    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path))  # nothing built there: no star is explained
    empty = cli("zoo", "list")
    assert empty.exit_code == 0 and "none built yet" in empty.stdout and "already built" not in empty.stdout


def test_zoo_build_writes_the_file_and_refuses_to_overwrite(cli, tmp_path):
    out = tmp_path / "t.onnx"
    result = cli("zoo", "build", "tiny_cnn", "-o", out)
    assert result.exit_code == 0 and out.exists() and "cache" in result.stdout
    before = out.read_bytes()
    assert_one_line_error(cli("zoo", "build", "tiny_cnn", "-o", out), "already exists", "--force")
    assert out.read_bytes() == before
    assert cli("zoo", "build", "tiny_cnn", "-o", out, "--force").exit_code == 0
    folder = f"{tmp_path / 'models'}/"  # a trailing slash: a folder meant (a file named 'models' was written)
    assert_one_line_error(cli("zoo", "build", "tiny_cnn", "-o", folder), "names a folder", "tiny_cnn.onnx")
    assert not (tmp_path / "models").exists()


def test_zoo_build_unknown_name(cli, tmp_path):
    assert_one_line_error(cli("zoo", "build", "resnet9000", "-o", tmp_path / "x.onnx"), "resnet9000", "zoo list")
    assert_one_line_error(cli("zoo", "build", "tiny_cnnn", "-o", tmp_path / "x.onnx"), "did you mean 'tiny_cnn'?")


def test_profile_gives_every_compute_node_a_row(cli, tiny_cnn_path, tmp_path):
    out = tmp_path / "costs.csv"
    result = cli("profile", tiny_cnn_path, "--device", "cpu:1", "--batch", "1,4", "--runs", "3", "--warmup", "1",
                 "-o", out)
    assert result.exit_code == 0, result.stdout + result.stderr
    costs = pd.read_csv(out)
    assert list(costs.columns) == COLUMNS
    model = onnx.load(str(tiny_cnn_path))
    for batch in (1, 4):
        rows = costs[costs.batch_size == batch]
        assert sorted(rows.node) == sorted(n.name for n in model.graph.node)
        assert (rows.runs == 3).all() and (rows.device == "cpu:1").all()
        assert (rows.mean_us >= 0).all() and (rows.output_bytes > 0).all()
        assert (rows.timing == "cpu").all() and (rows.host_us == rows.mean_us).all()  # on a CPU, host time is it
    # output bytes scale with the batch
    first = costs[costs.node == model.graph.node[0].name].set_index("batch_size").output_bytes
    assert first[4] == 4 * first[1]
    meta = read_meta(out)
    assert meta["opt_level"] == "basic" and set(meta["batches"]) == {"1", "4"}
    assert meta["timing"] == ["cpu"] and meta["batches"]["1"]["gpu"] is None and meta["gpu_clock"] is None
    assert "sum of nodes" in result.stdout and "profiler overhead" in result.stdout
    assert f"staronnx plot {out} --kind nodes" in result.stdout


def test_profile_accepts_a_zoo_name(cli, tmp_path):
    out = tmp_path / "c.csv"
    result = cli("profile", "tiny_transformer", "--runs", "2", "--warmup", "0", "--no-overhead", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert len(pd.read_csv(out)) == len(onnx.load(str(Path(result.stdout.split("at ")[1].split()[0]))).graph.node)


@pytest.mark.parametrize("args, fragments", [
    (["profile", "missing.onnx"], ["not found", "zoo build NAME -o missing.onnx", "googlenet"]),
    (["profile", "googlenett"], ["no zoo model", "did you mean 'googlenet'?"]),
    (["sweep", "noplan"], ["no plan directory", "staronnx split MODEL -o noplan"]),
    (["profile", "TINY", "--device", "gpu7"], ["gpu7", "cpu:THREADS"]),
    (["profile", "TINY", "--runs", "0"], ["--runs 0"]),
    (["profile", "TINY", "--batch", "0"], ["--batch"]),
    (["profile", "TINY", "--batch", "a,b"], ["--batch"]),
    (["profile", "TINY", "--opt-level", "max"], ["--opt-level"]),
    pytest.param(["profile", "TINY", "--device", "cuda:0"], ["CUDA is not usable", "--device cpu"],
                 marks=pytest.mark.skipif(cuda_status().usable, reason="a GPU is here")),
])
def test_profile_bad_input_is_one_line_and_exit_2(cli, tiny_cnn_path, tmp_path, args, fragments):
    args = [str(tiny_cnn_path) if a == "TINY" else a for a in args]
    assert_one_line_error(cli(*args, "-o", tmp_path / "c.csv"), *fragments)
    assert not (tmp_path / "c.csv").exists()


def test_profile_refuses_an_unwritable_output_before_it_measures(cli, tiny_cnn_path, tmp_path):
    """-o under a file: refused only after every profiling run (41 s of 3,000 runs, then the error)."""
    (tmp_path / "afile").write_text("x\n")
    result = cli("profile", tiny_cnn_path, "--runs", "100000", "-o", tmp_path / "afile" / "c.csv")
    assert_one_line_error(result, "a file is where a folder was to be made")


def test_profile_text_file_and_model_without_batch(cli, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("hello\n")
    assert_one_line_error(cli("profile", text, "-o", tmp_path / "c.csv"), "not an ONNX model")
    fixed = tmp_path / "fixed.onnx"
    onnx.save(relu_model([1, 4]), str(fixed))
    assert_one_line_error(cli("profile", fixed, "-o", tmp_path / "c.csv"), "fixed first dimension")


def test_profile_never_overwrites_without_force(cli, tiny_cnn_path, tmp_path):
    out = tmp_path / "c.csv"
    out.write_text("precious\n")
    assert_one_line_error(cli("profile", tiny_cnn_path, "-o", out), "already exists", "--force")
    assert out.read_text() == "precious\n"
    assert_one_line_error(cli("profile", tiny_cnn_path, "-o", tmp_path, "--force"), "names a directory", "costs.csv")
    # a folder to be made, said as one by its '/': a file named 'new' and 'new.meta.json' were written
    assert_one_line_error(cli("profile", tiny_cnn_path, "-o", f"{tmp_path / 'new'}/"), "new/' names a directory",
                          "new/costs.csv")
    assert not (tmp_path / "new").exists()


def test_doctor_reports_cuda_without_ort_log_noise():
    # A subprocess, because ONNX Runtime's C++ logger writes to file descriptor 2, not to sys.stderr.
    result = subprocess.run([sys.executable, "-m", "staronnx_cli", "doctor"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime" in result.stdout and "--workers auto" in result.stdout
    assert "CUDA" in result.stdout
    assert result.stderr.strip() == "", result.stderr  # e.g. no "Failed to load library ... libcublasLt"


def test_profile_a_model_with_two_inputs_an_int_input_and_external_data(cli, tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((8, 8), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["a", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "b"], ["s"], name="add"),
             helper.make_node("Cast", ["ids"], ["idf"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Mul", ["s", "idf"], ["out"], name="mul")]
    graph = helper.make_graph(nodes, "two_inputs",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 8]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 8]),
                               helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "two.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="two.data", size_threshold=0)
    out = tmp_path / "c.csv"
    result = cli("profile", path, "--batch", "2", "--runs", "2", "--warmup", "0", "-o", out)
    assert result.exit_code == 0, result.stderr
    costs = pd.read_csv(out)
    assert sorted(costs.node) == ["add", "cast", "mm", "mul"]
    assert costs.set_index("node").output_bytes["mm"] == 2 * 8 * 4


def test_the_cli_starts_without_loading_the_heavy_libraries():
    """`staronnx --help` and the parsing of any command load typer and rich only: ONNX Runtime, pandas, numpy,
    onnx and matplotlib are imported by the commands that use them (start-up was 2 s, now about 0.3 s)."""
    import subprocess
    import sys

    code = ("import sys; from staronnx_cli.cli.app import app; "
            "print(sorted(m for m in ('onnxruntime', 'pandas', 'numpy', 'onnx', 'matplotlib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_version_and_the_exit_code_of_a_sweep_with_no_answer(cli, tiny_cnn_path, tmp_path):
    from staronnx_cli import __version__

    version = cli("--version")
    assert version.exit_code == 0 and version.stdout.strip() == f"staronnx {__version__}"
    platform = tmp_path / "p.toml"
    platform.write_text('name = "slow"\n[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n[[times]]\npart = 0\n'
                        'kind = "cpu:1"\nbatch = 1\nmean_ms = 100.0\n')  # 10 q/s at most
    run = tmp_path / "run"
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", platform, "--batch", "1", "--rate", "50,80",
                 "--batches", "10", "--warmup", "1", "-o", run)
    assert result.exit_code == 3 and "no uncongested point" in result.stdout and "exit code 3" in result.stdout
    assert len((run / "points.csv").read_text().splitlines()) == 3  # measured and kept all the same


@pytest.mark.parametrize("command", [[], ["zoo", "build"], ["profile"], ["split"], ["sweep"], ["plot"], ["report"],
                                     ["trace"], ["doctor"], ["platform"]])
def test_help_reads_without_artefacts(cli, command):
    """Arguments in upper case, flags without a type (typer 0.27+ printed `{model}` and `<bool>`)."""
    text = cli(*command, "--help").stdout
    assert "Usage: staronnx" in text
    assert "<bool>" not in text and "{" not in text.split("Usage:")[1].splitlines()[0]
