"""--input-data: random, zeros, or a user's samples (.npz, perf_analyzer's JSON) fed to profile, split and sweep (both
schedulers, --system native) and a mix's models; each mistake in a samples file one line before any run."""

import json

import numpy as np
import onnx
import pandas as pd
import pytest
from conftest import assert_one_line_error
from onnx import TensorProto, helper, numpy_helper

from staronnx_cli.errors import UserError
from staronnx_cli.inputdata import InputData, check_input_data, parse_input_data
from staronnx_cli.modelio import InputSpec


def _spec(name, shape, dtype=np.float32, batched=True):
    return InputSpec(name, np.dtype(dtype), shape, "batch" if batched else "", 2, batched)


def test_a_batch_cycles_over_the_samples_and_a_whole_input_takes_the_first(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(6, dtype=np.float64).reshape(3, 2), k=np.array([[4], [5], [6]]), one=np.ones(2))
    data = parse_input_data(str(path))
    feeds = data.feeds([_spec("x", (2,)), _spec("k", (1,), np.int64, batched=False), _spec("one", (2,))], 5)
    assert feeds["x"].dtype == np.float32 and feeds["x"][:, 0].tolist() == [0, 2, 4, 0, 2]
    assert feeds["k"].tolist() == [4] and feeds["one"].shape == (5, 2)  # a whole input: sample 1; one sample: cycled
    zeros = parse_input_data("ZEROS").feeds([_spec("x", (2,)), _spec("t", (), batched=False)], 3)
    assert zeros["x"].shape == (3, 2) and not zeros["x"].any() and zeros["t"].shape == ()
    assert InputData("random").words() == "random" and data.words().startswith("d.npz (sha256 ")


def test_perf_analyzers_json_flat_nested_or_with_content_and_shape(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": [{"x": [1, 2, 3, 4], "m": {"content": [1, 0], "shape": [2]}},
                                         {"x": [[5, 6], [7, 8]], "m": {"content": [0, 1], "shape": [2]}}]}))
    feeds = parse_input_data(str(path)).feeds([_spec("x", (2, 2)), _spec("m", (2,), np.bool_)], 3)
    assert feeds["x"][:, 0, 0].tolist() == [1, 5, 1] and feeds["m"].tolist() == [[1, 0], [0, 1], [1, 0]]


@pytest.mark.parametrize("content, message", [
    ({"data": [{"x": {"b64": "AAAA"}}]}, 'is base64 ("b64")'),
    ({"data": [{"x": [1, 2]}, {"y": [1, 2]}]}, "sample 2 has no 'x' (sample 1 has it)"),
    ({"data": [{"x": [1, 2]}, {"x": [1, 2], "y": [1, 2]}]}, "sample 1 has no 'y' (sample 2 has it)"),
    ({"data": [{"x": [[1, 2], [3]]}]}, "is not a list of numbers (ragged or strings)"),
    ({"data": [{"x": [1, 2]}, {"x": [1, 2, 3]}]}, "have several shapes"),
    ({"data": [{"x": {"content": [1, 2, 3], "shape": [2]}}]}, 'has 3 values, not the [2] its "shape" says'),
    ({"inputs": []}, 'has no "data": [...] list of samples'),
    ({"data": [{"x": ["a", "b"]}]}, "not numbers or booleans"),
    ({"data": []}, 'has an empty "data" list'),
    ({"data": [[{"x": [1]}], [{"x": [2]}]]}, "holds streams"),
])
def test_a_json_file_perf_analyzer_would_not_read_either_is_one_line(tmp_path, content, message):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UserError) as caught:
        parse_input_data(str(path))
    assert message in str(caught.value)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.ones((3, 5))}, "'x' has shape (3, 5); the model takes samples of [4]"),
    ({"x": np.ones((3, 4)), "y": np.ones(2)}, "holds 'y', which is not an input of the model (its inputs: x)"),
    ({"z": np.ones((3, 4))}, "holds 'z', which is not an input"),
    ({"x": np.ones((3, 4), np.float32), "k": np.ones(1)}, "'k' holds float64 values up to 1 in size, the model takes "
                                                          "int64"),
    ({"x": np.full((3, 4), 1e300)}, "'x' holds float64 values up to 1e+300 in size, the model takes float32"),
    ({"x": np.ones((0, 4))}, "'x' holds no sample (shape (0, 4))"),
])
def test_a_samples_file_that_does_not_fit_the_model_names_the_input(tmp_path, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    specs = [_spec("x", (4,))] + ([_spec("k", (1,), np.int64, batched=False)] if "k" in arrays else [])
    with pytest.raises(UserError) as caught:
        check_input_data(parse_input_data(str(path)), specs)
    assert message in str(caught.value).replace("inputs: x, k", "inputs: x")


@pytest.mark.parametrize("text, message", [("", "is empty"), ("nope.npz", "not found"),
                                           ("model.onnx", "neither random, zeros, a .npz nor a .json file"),
                                           ("garbage.npz", "cannot be read")])
def test_an_input_data_that_is_not_a_samples_file_is_one_line(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match=message):
        parse_input_data(text)


def _lookup(path, seed=0):
    """ids [batch, 4] index a table of 10 rows: an id of 10 or more is ONNX Runtime's out-of-bounds error, so a
    samples file holding one shows that the samples, not random ids, reached the run; `seed` None: a model this
    host never measured (its own sha256)."""
    table = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((10, 8)).astype(np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="gather"),
             helper.make_node("ReduceSum", ["e"], ["y"], name="sum", keepdims=0, axes=[1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def _samples(tmp_path, top):
    path = tmp_path / f"ids{top}.npz"
    np.savez(path, ids=np.full((2, 4), top, np.int64))
    return path


def test_profile_and_split_run_on_the_samples(cli, tmp_path):
    model = _lookup(tmp_path / "lookup.onnx")
    good, bad = _samples(tmp_path, 9), _samples(tmp_path, 10)
    refused = cli("profile", model, "--batch", "1", "--runs", "2", "--input-data", bad, "-o", tmp_path / "c.csv")
    assert refused.exit_code == 2 and "out of data bounds" in refused.output.lower(), refused.output
    done = cli("profile", model, "--batch", "1", "--runs", "2", "--input-data", good, "-o", tmp_path / "c.csv")
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "c.meta.json").read_text())["input_data"].startswith(f"{good.name} (sha256 ")
    split = cli("split", model, "--method", "topo", "--offload", "0.5", "--input-data", bad, "-o", tmp_path / "p")
    assert split.exit_code != 0 and "out of data bounds" in split.output.lower(), split.output


@pytest.mark.parametrize("system, hot_path", [("staronnx", ""), ("staronnx", "python"), ("native", "")])
def test_a_sweep_feeds_the_samples_on_every_scheduler_and_records_them(cli, tmp_path, monkeypatch, system, hot_path):
    monkeypatch.setenv("STARONNX_HOT_PATH", hot_path)
    model = _lookup(tmp_path / "lookup.onnx")
    args = ["sweep", model, "--system", system, "--workers", "cpu:1x1", "--batch", "2", "--rate", "50", "--batches",
            "4", "--warmup", "1"]
    failed = cli(*args, "--input-data", _samples(tmp_path, 10), "-o", tmp_path / "bad")
    errors = pd.read_csv(tmp_path / "bad" / "points.csv").errors
    assert errors.str.contains("out of data bounds", case=False).all(), (failed.output, errors.tolist())
    assert "check it with 'staronnx profile MODEL --batch N --input-data ids10.npz'" in failed.output
    good = _samples(tmp_path, 9)
    done = cli(*args, "--input-data", good, "-o", tmp_path / "good")
    assert done.exit_code == 0, done.output
    assert pd.read_csv(tmp_path / "good" / "points.csv").errors.isna().all()
    meta = json.loads((tmp_path / "good" / "run.json").read_text())
    assert meta["input_data"].startswith(f"{good.name} (sha256 ")
    if system == "staronnx" and not hot_path:  # another file, or none, is another run: --resume refuses it
        assert_one_line_error(cli(*args, "-o", tmp_path / "good", "--resume"), "input_data")
        import shutil

        shutil.copy(good, tmp_path / "renamed.npz")  # the same samples under another name: the same run
        assert cli(*args, "--input-data", tmp_path / "renamed.npz", "-o", tmp_path / "good", "--resume").exit_code == 0
        del meta["input_data"]  # a run written before the key: measured on random inputs, resumed on them
        (tmp_path / "good" / "run.json").write_text(json.dumps(meta))
        assert cli(*args, "-o", tmp_path / "good", "--resume").exit_code == 0


def test_a_mix_gives_each_model_its_own_samples_and_refuses_the_flag(cli, tmp_path):
    model = _lookup(tmp_path / "lookup.onnx")
    _samples(tmp_path, 10)
    mix = tmp_path / "mix.toml"
    mix.write_text(f'[[model]]\nname = "a"\nmodel = "{model}"\nrate = 50\nbatch = 2\ninput_data = "ids10.npz"\n'
                   '[[model]]\nname = "b"\nmodel = "tiny_cnn"\nrate = 50\nbatch = 1\n')
    done = cli("sweep", "--mix", mix, "--workers", "cpu:1x1", "--scale", "1", "--batches", "3", "--warmup", "0",
               "-o", tmp_path / "run")
    points = pd.read_csv(tmp_path / "run" / "points.csv")
    assert points.errors.str.contains("out of data bounds", case=False).all(), (done.output, points.errors.tolist())
    models = json.loads((tmp_path / "run" / "run.json").read_text())["mix"]["models"]
    assert models[0]["input_data"].startswith("ids10.npz (sha256 ") and models[1]["input_data"] == "random"
    assert_one_line_error(cli("sweep", "--mix", mix, "--input-data", "zeros", "-o", tmp_path / "r2"),
                          "input_data = ... in its [[model]]")
    mix.write_text(mix.read_text().replace('"ids10.npz"', "7"))
    assert_one_line_error(cli("sweep", "--mix", mix, "-o", tmp_path / "r3"), "input_data = 7 must be")
    mix.write_text(mix.read_text().replace("input_data = 7", 'input_data = "nope.npz"'))
    assert_one_line_error(cli("sweep", "--mix", mix, "-o", tmp_path / "r4"), "model 'a': input_data file",
                          "nope.npz' not found")


def test_the_simulator_runs_on_this_hosts_times_learnt_on_the_data_and_a_platform_refuses_it(cli, tmp_path):
    """advise --input-data calibrated into the data's own cache file, then simulated with the random inputs' file
    (missing on a fresh cache: every advise exited 2; else the predictions were the random inputs')."""
    from staronnx_cli.cachedir import cache_dir
    from staronnx_cli.modelio import sha256_of

    # a model never measured here (not a fresh STARONNX_CACHE: advise's forkserver keeps the environment it began
    # with, an earlier test's)
    model = _lookup(tmp_path / "lookup.onnx", seed=None)
    good = _samples(tmp_path, 9)
    advised = cli("advise", model, "--rate", "50", "--batch", "1", "--offload", "0", "--streams", "0", "--input-data",
                  good, "--confirm-batches", "5", "--budget-s", "60", "-o", tmp_path / "advice")
    assert advised.exit_code == 0, advised.output
    assert list((cache_dir() / "perfmodels").glob(f"*{sha256_of(model)[:16]}*-in*.json"))  # learnt apart
    simulated = cli("sweep", model, "--engine", "sim", "--workers", "cpu:1x2", "--batch", "1", "--rate", "50",
                    "--input-data", good, "-o", tmp_path / "sim")
    assert simulated.exit_code == 0, simulated.output
    assert_one_line_error(cli("sweep", model, "--engine", "sim", "--workers", "cpu:1x2", "--batch", "1", "--rate",
                              "50", "-o", tmp_path / "sim2"), "no performance models of this model on this host")
    platform = tmp_path / "p.toml"
    platform.write_text('name = "m"\n[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n[[times]]\npart = 0\n'
                        'kind = "cpu:1"\nbatch = 1\nmean_ms = 2.0\nstd_ms = 0.1\n')
    assert_one_line_error(cli("sweep", model, "--engine", "sim", "--platform", platform, "--input-data", "zeros",
                              "-o", tmp_path / "s"), "--input-data with --platform")


def test_advise_profiles_on_the_samples_and_refuses_a_file_that_does_not_fit(cli, tmp_path):
    model = _lookup(tmp_path / "lookup.onnx")
    np.savez(tmp_path / "other.npz", image=np.zeros((1, 3, 32, 32), np.float32))
    assert_one_line_error(cli("advise", model, "--rate", "50", "--input-data", tmp_path / "other.npz", "-o",
                              tmp_path / "a"), "holds 'image', which is not an input of the model (its inputs: ids)")
    assert not (tmp_path / "a").exists()
    failed = cli("advise", model, "--rate", "50", "--batch", "1", "--input-data", _samples(tmp_path, 10), "-o",
                 tmp_path / "b")
    assert failed.exit_code == 2 and "out of data bounds" in failed.output, failed.output


def test_a_npy_under_a_npz_name_a_file_gone_and_integers_that_would_wrap_are_one_line(tmp_path):
    np.save(tmp_path / "one.npy", np.ones((2, 4)))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(UserError, match="is one array \\(a .npy\\), not a .npz of arrays named after"):
        parse_input_data(str(tmp_path / "one.npz"))
    np.savez(tmp_path / "ids.npz", ids=np.array([[300, -1]]))
    data = parse_input_data(str(tmp_path / "ids.npz"))
    with pytest.raises(UserError, match="'ids' holds int64 values from -1 to 300, the model takes uint8"):
        check_input_data(data, [_spec("ids", (2,), np.uint8)])
    assert data.feeds([_spec("ids", (2,), np.int32)], 1)["ids"].tolist() == [[300, -1]]  # fits: cast
    (tmp_path / "ids.npz").unlink()
    for use in (lambda: data.feeds([_spec("ids", (2,))], 1), data.words, data.cache_key):
        with pytest.raises(UserError, match="is gone \\(moved or removed since it was given\\)"):
            use()
    assert parse_input_data("zero") == InputData("zeros")  # perf_analyzer's word


def test_a_fixed_input_led_by_1_beside_a_batched_one_is_a_forgotten_batch_axis_not_a_whole_input():
    from staronnx_cli import modelio

    def model(shape):
        inputs = [helper.make_tensor_value_info("x", 1, ["batch", 4]), helper.make_tensor_value_info("m", 1, shape)]
        graph = helper.make_graph([helper.make_node("Add", ["x", "m"], ["o"], name="a")], "g", inputs,
                                  [helper.make_tensor_value_info("o", 1, ["batch", 4])])
        return helper.make_model(graph)

    with pytest.raises(UserError, match="input 'm' has a fixed first dimension 1"):
        modelio.input_specs(model([1, 4]))  # dynamic axes set on x only: one query's mask for every query
    assert [s.batched for s in modelio.input_specs(model([8, 4]))] == [True, False]  # a table: whole


def test_the_learnt_task_times_are_kept_apart_per_input_data(tmp_path, monkeypatch):
    """dmda's cached models of a model fed zeros or a file are not those learnt on random inputs (advise
    calibrated nothing on its data: the random inputs' times were found and reused)."""
    from staronnx_cli.runtime.perfmodel import cache_file

    np.savez(tmp_path / "d.npz", x=np.ones(3))
    keys = {cache_file("h", "m" * 64, "", "1.0", d.cache_key()).name
            for d in (InputData(), InputData("zeros"), parse_input_data(str(tmp_path / "d.npz")))}
    assert len(keys) == 3 and cache_file("h", "m" * 64, "", "1.0").name in keys  # random: the file as before


def test_triton_sends_sample_i_as_the_i_th_query_of_a_batch():
    from staronnx_cli.systems.triton import TritonClient

    client = TritonClient.__new__(TritonClient)
    sent = []

    class Grpc:
        class InferInput:
            def __init__(self, name, shape, dtype):
                self.shape = shape

            def set_data_from_numpy(self, array):
                sent.append(array.copy())

    client.grpc, client.specs, client.rows, client.turn = Grpc, [[_spec("x", (2,))]], [3], [0]
    client.samples = [{"x": np.arange(6, dtype=np.float32).reshape(3, 2)}]
    for _ in range(4):
        client.request(0)
    assert [s.tolist() for s in sent] == [[[0, 1]], [[2, 3]], [[4, 5]], [[0, 1]]]


def test_a_fleet_sweep_simulated_on_a_platform_with_input_data_is_refused_before_ray(cli, tmp_path):
    campaign = tmp_path / "c.toml"
    campaign.write_text('name = "t"\n[kinds.small]\nresources = { small = 1 }\n[[sweep]]\nname = "a"\n'
                        'target = "tiny_cnn"\nkinds = ["small"]\nengine = "sim"\nplatform = "p.toml"\n'
                        'input_data = "zeros"\n')
    assert_one_line_error(cli("fleet", campaign, "-o", tmp_path / "out", "--ray-address", "127.0.0.1:9"),
                          "(a): input_data with a platform")
