"""Every reader's input file is a regular file of bounded size, and counts are checked before anything is built
from them (issue 26): a FIFO or /dev/zero is one line, not a hang; 10^10 combinations are refused uncounted."""

import os
import time

import pytest

from staronnx_cli.errors import UserError
from staronnx_cli.inputfile import checked_input


def test_an_input_file_must_be_a_regular_file_of_bounded_size(tmp_path):
    good = tmp_path / "t.txt"
    good.write_text("0\n1\n")
    assert checked_input(good, "arrival trace", "write times") == good
    os.mkfifo(tmp_path / "fifo")
    for path, says in ((tmp_path / "fifo", "not a regular file"), ("/dev/zero", "not a regular file"),
                       (tmp_path, "is a directory"), (tmp_path / "none", "not found: write times")):
        with pytest.raises(UserError, match=says):
            checked_input(path, "arrival trace", "write times")
    with pytest.raises(UserError, match="more than the 0 MiB"):
        checked_input(good, "arrival trace", "write times", max_bytes=1)


def test_a_mix_trace_that_never_ends_is_refused_when_the_mix_is_read(tmp_path):
    from staronnx_cli.mix.spec import read_mix

    os.mkfifo(tmp_path / "trace.fifo")
    for arrival in ("trace:/dev/zero", "trace:trace.fifo"):
        (tmp_path / "mix.toml").write_text(f'[[model]]\nmodel = "tiny_cnn"\nrate = 5\narrival = "{arrival}"\n')
        with pytest.raises(UserError, match="is not a regular file"):
            read_mix(tmp_path / "mix.toml")


def test_a_mix_of_ten_billion_combinations_is_refused_before_any_is_built(tmp_path):
    from staronnx_cli.mix.spec import read_mix

    (tmp_path / "big.toml").write_text("".join(
        f'[[model]]\nname = "m{i}"\nmodel = "tiny_cnn"\nrate = 10\nbatch = [1,2,3,4,5,6,7,8,9,10]\n\n'
        for i in range(10)))
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="make 10000000000 combinations"):
        read_mix(tmp_path / "big.toml")
    assert time.perf_counter() - t0 < 5


def test_platform_counts_are_bounded_before_workers_are_built():
    from staronnx_cli.runtime.platform import parse_platform

    for table, says in (({"kind": "cpu", "count": 10**9, "cores": 1}, "count = 1000000000 is more than 256"),
                        ({"kind": "cpu", "count": 1, "cores": 10**9}, "cores = 1000000000 is more than 1024")):
        with pytest.raises(UserError, match=says):
            parse_platform({"workers": [table], "times": []})


def test_what_was_an_internal_error_is_one_line(cli, tiny_cnn_path, tmp_path, monkeypatch):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("advise", tiny_cnn_path, "--rate", "1e-300", "-o", tmp_path / "a"), "at least 0.01")
    (tmp_path / "file").write_text("mine\n")
    assert_one_line_error(cli("advise", tiny_cnn_path, "--rate", "20", "-o", tmp_path / "file"), "is a file")
    assert (tmp_path / "file").read_text() == "mine\n"
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50",
                              "-o", tmp_path / ("x" * 300)), "longer than the file system allows (255 bytes)")
    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "file" / "cache"))
    assert_one_line_error(cli("zoo", "build", "tiny_transformer", "-o", tmp_path / "t.onnx"),
                          "set STARONNX_CACHE to a folder you can write, or unset it")
    # the default cache unusable: nothing to unset; a sweep of a model file needs it only to keep what it learns of
    # the task times: said once, and it measures (it measured one point, then stopped: fuzz round 7)
    monkeypatch.delenv("STARONNX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    result = cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50", "--batches", "5",
                 "-o", tmp_path / "r")
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.output.split())
    assert "cannot be written (Not a directory): what this sweep learns of the task times is kept in memory only; " \
           "set STARONNX_CACHE to a folder you can write to keep it for the next sweep" in said and "unset" not in said


def test_a_report_of_a_run_with_no_point_says_so(cli, tiny_cnn_path, tmp_path):
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50", "--batches", "5",
               "--warmup", "1", "-o", run).exit_code == 0
    lines = (run / "points.csv").read_text().splitlines()
    (run / "points.csv").write_text(lines[0] + "\n")
    (run / "batches.csv").unlink()
    assert cli("report", run, "-o", tmp_path / "r.md").exit_code == 0
    text = (tmp_path / "r.md").read_text()
    assert "No point was measured yet" in text and "nan" not in text


def test_a_platforms_speed_costs_and_factors_are_checked_figures(cli, tiny_cnn_path, tmp_path):
    from conftest import assert_one_line_error

    costs = tmp_path / "costs.csv"
    assert cli("profile", tiny_cnn_path, "--batch", "1", "--runs", "3", "--warmup", "1", "-o", costs).exit_code == 0
    lines = costs.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("mean_us")] = "-1000000"  # gave a worst-case latency of -999,999.8 ms, exit 0
    (tmp_path / "bad.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")

    def platform(costs_file: str, factor: str) -> str:
        text = (f'[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n\n[[speeds]]\nkind = "cpu:1"\n'
                f'costs = "{costs_file}"\nfactor = {factor}\n')
        (tmp_path / "p.toml").write_text(text)
        return str(tmp_path / "p.toml")

    sweep = ("sweep", tiny_cnn_path, "--engine", "sim", "--batch", "1", "--rate", "50", "-o", tmp_path / "s")
    assert_one_line_error(cli(*sweep, "--platform", platform("bad.csv", "1.0")), "mean_us", "not negative")
    assert_one_line_error(cli(*sweep, "--platform", platform("costs.csv", "1e308")), "factor", "more than 1e+09")
    result = cli(*sweep, "--platform", platform("costs.csv", "2.0"), "--force")
    assert result.exit_code == 0, result.stderr
    # the fixes are commands to run: the model's name, the speed's device, a path without '..' nor '{model}'
    (tmp_path / "p.toml").write_text('[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n\n[[speeds]]\nkind = "cpu:1"\n'
                                     'costs = "../x/{model}/c.csv"\ndevice = "cpu:1"\n')
    missing = tmp_path.parent / "x" / "tiny_cnn" / "c.csv"
    assert_one_line_error(cli("platform", "check", tmp_path / "p.toml", "tiny_cnn"),
                          f"profile the model with 'staronnx profile tiny_cnn --device cpu:1 -o {missing}'")
    (tmp_path / "p.toml").write_text('[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n\n[[speeds]]\nkind = "cpu:1"\n'
                                     'costs = "costs.csv"\ndevice = "cpu:4"\n')
    assert_one_line_error(cli("platform", "check", tmp_path / "p.toml", "tiny_cnn"),
                          "has no rows of device cpu:4 (it has cpu:", "profile on that device with 'staronnx profile "
                          "tiny_cnn --device cpu:4")


def test_the_run_lock_is_never_followed_through_a_link(cli, tiny_cnn_path, tmp_path):
    from conftest import assert_one_line_error

    outside = tmp_path / "precious.txt"
    outside.write_text("mine\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".staronnx.lock").symlink_to(outside)
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50",
                              "--batches", "5", "--warmup", "1", "-o", run), "symbolic link")
    assert outside.read_text() == "mine\n"  # not truncated, no pid written into it


def test_two_advise_into_one_output_the_second_is_one_line(cli, tiny_cnn_path, tmp_path):
    from conftest import assert_one_line_error

    from staronnx_cli.dirlock import run_lock

    out = tmp_path / "advice"
    out.mkdir()
    with run_lock(out):  # the first advise is still writing there
        assert_one_line_error(cli("advise", tiny_cnn_path, "--rate", "20", "-o", out),
                              "being written by another staronnx command", f"pid {os.getpid()}")


@pytest.mark.parametrize("elem_type, name", [(8, "STRING"), (16, "BFLOAT16")])
def test_a_model_with_an_input_staronnx_cannot_feed_is_one_line(cli, tmp_path, elem_type, name):
    """A string or bfloat16 input: no random batch can be made for it (KeyError: dtype('O') before, and from the
    native core for bfloat16)."""
    import onnx
    from conftest import assert_one_line_error
    from onnx import helper

    x, y = (helper.make_tensor_value_info(n, elem_type, ["batch", 4]) for n in ("x", "y"))
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    fragment = f"input 'x' is of type {name}: staronnx feeds float, integer and bool inputs only"
    assert_one_line_error(cli("sweep", tmp_path / "m.onnx", "--workers", "cpu:1x1", "-o", tmp_path / "r"), fragment)
    assert_one_line_error(cli("profile", tmp_path / "m.onnx", "-o", tmp_path / "c.csv"), fragment)


def test_profile_bounds_its_runs_and_the_memory_its_largest_batch_needs(cli, tiny_cnn_path, tmp_path):
    """--runs 1e9 ran for ever (ONNX Runtime's profiler dropping events); a model of 2e9 values per sample grew
    to 12 GB before anything was said."""
    import onnx
    from conftest import assert_one_line_error
    from onnx import TensorProto, helper

    assert_one_line_error(cli("profile", tiny_cnn_path, "--runs", "1000000000", "-o", tmp_path / "c.csv"),
                          "--runs 1000000000: give 1 to 10,000")
    assert_one_line_error(cli("profile", tiny_cnn_path, "--warmup", "20000", "-o", tmp_path / "c.csv"),
                          "--warmup 20000")
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 10**12]) for n in ("x", "y"))
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "huge.onnx")
    assert_one_line_error(cli("profile", tmp_path / "huge.onnx", "-o", tmp_path / "h.csv"),
                          "profiling batch 1 needs at least", "the model's own sample is too large for this machine")
    assert not (tmp_path / "h.csv").exists()


def test_a_model_whose_nodes_are_unnamed_or_share_a_name_is_one_line_in_profile_and_split(cli, tmp_path):
    """ONNX allows nodes without names; profile timed each at 0 us and split blamed the costs file it wrote."""
    import onnx
    from conftest import assert_one_line_error
    from onnx import TensorProto, helper

    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 8]) for n in ("x", "y"))
    for names, fragment in ((["", "", ""], "node #0 (Relu) has no name"),
                            (["r", "s", "r"], "node #2 (Relu) is named 'r' like an earlier node")):
        nodes = [helper.make_node(op, [i], [o], name=n)
                 for op, i, o, n in zip(("Relu", "Sigmoid", "Relu"), ("x", "a", "b"), ("a", "b", "y"), names)]
        model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, tmp_path / "m.onnx")
        assert_one_line_error(cli("profile", tmp_path / "m.onnx", "-o", tmp_path / "c.csv"), fragment, "unique name")
        assert_one_line_error(cli("split", tmp_path / "m.onnx", "--offload", "0.3", "-o", tmp_path / "p"), fragment)


def test_a_free_sequence_dimension_is_given_with_shape_as_perf_analyzer_does(cli, tmp_path):
    """A free sequence length was refused with a command to fix it in another file (make_dynamic_shape_fixed), and an
    unnamed one with 're-export': --shape INPUT:SIZES (perf_analyzer's) fixes them in a cached copy named by the
    shape, so two sequence lengths are told apart; the batch stays free."""
    import onnx
    import pandas as pd
    from conftest import assert_one_line_error
    from onnx import helper

    x, y = (helper.make_tensor_value_info(n, 1, ["batch", "seq", "seq"]) for n in ("x", "y"))  # a mask's shape
    m = helper.make_tensor_value_info("m", 1, ["batch", None])  # an unnamed free size
    z = helper.make_tensor_value_info("z", 1, ["batch", None])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu"),
                                                 helper.make_node("Neg", ["m"], ["z"], name="neg")], "g", [x, m],
                                                [y, z]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    assert_one_line_error(cli("profile", tmp_path / "m.onnx", "-o", tmp_path / "c.csv"),  # every input, at once
                          "inputs 'x', 'm' have free dimensions besides the batch",
                          "--shape x:SIZE,SIZE --shape m:SIZE (SIZE e.g. 128)")
    assert_one_line_error(cli("profile", tmp_path / "m.onnx", "--shape", "x:16,16", "-o", tmp_path / "c.csv"),
                          "input 'm' has free dimensions ['?']", "--shape m:SIZE")  # one still free: no copy
    for shape, says in ((["y:16,16"], "the model has no input 'y'; its inputs: x, m"),
                        (["x:16"], "input 'x' has 2 dimension(s) after the batch ([seq,seq]): give 2 size(s)"),
                        (["x:16,8", "m:4"], "dimension 'seq' two sizes (16 and 8)"),
                        (["x:16,16", "m:4", "x:8,8"], "gives input 'x' twice with different sizes"),
                        (["x:16,0"], "every size must be from 1 to 2^31"), (["x"], "write INPUT:SIZES")):
        assert_one_line_error(cli("sweep", tmp_path / "m.onnx", *[a for s in shape for a in ("--shape", s)],
                                  "-o", tmp_path / "never"), says)
    args = ("sweep", tmp_path / "m.onnx", "--shape", "x:16,16", "--shape", "m:4", "--workers", "cpu:1x1", "--batch",
            "1,2", "--rate", "50", "--batches", "5", "-o", tmp_path / "r")
    done = cli(*args)
    assert done.exit_code == 0, done.stderr
    assert "--shape x:16,16 m:4: the model with these sizes" in " ".join(done.stdout.split())  # written or cached
    points = pd.read_csv(tmp_path / "r" / "points.csv")
    assert set(points.model) == {"m.x-16x16.m-4"} and (points.batches > 0).all()  # the batch axis stayed free
    again = cli(*args[:-4], "--rate", "50,60", "--batches", "5", "-o", tmp_path / "r", "--resume")  # the same copy
    assert again.exit_code == 0 and "cached at" in again.stdout, again.stderr
    assert_one_line_error(cli("sweep", tmp_path / "r", "--shape", "x:16,16", "-o", tmp_path / "r2"),
                          "--shape applies to a model")


def test_a_batch_on_the_second_axis_is_not_swept_as_the_first(cli, tmp_path):
    """A sequence-first model [seq, batch, hidden]: the fix offered was to fix 'batch', after which 'seq' was swept as
    the batch size and the verdict's N was a sequence length."""
    import onnx
    from conftest import assert_one_line_error
    from onnx import helper

    src, out = (helper.make_tensor_value_info(n, 1, ["seq", "batch", 8]) for n in ("src", "out"))
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["src"], ["out"], name="relu")], "g",
                                                [src], [out]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    for args in ((), ("--shape", "src:4,8")):
        assert_one_line_error(cli("profile", tmp_path / "m.onnx", *args, "-o", tmp_path / "c.csv"),
                              "input 'src' has its batch dimension ('batch') on axis 1, after 'seq'",
                              "export the model batch-first")
