"""Round 5 of mutation testing: the checks a campaign makes of its targets before Ray starts, the memory ceiling
profile runs under, the entry point's signals, the native core's passed-through outputs, the judge's older rules
and its draining note, and the zero-time check of costs.csv: each rule held by a tiny hand-made input and an exact
outcome (each test names what it holds and why it matters)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from staronnx_cli.errors import UserError


def refusal(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


# -- systems and campaigns: what each target is given ------------------------------------------------------------------

def test_every_whole_model_system_refuses_a_plan_and_no_one_model_system_runs_a_mix():
    """roundrobin, native and ortparallel each run one model whole: a plan of 2 parts is refused for each (a
    roundrobin given a plan ran its first part alone); a mix is refused by each of them and by ortstreams with the
    fix (staronnx or triton), not with ortstreams' own 'give a branch plan'."""
    from staronnx_cli.systems import check_system_target, make_engine

    for system in ("roundrobin", "native", "ortparallel"):
        check_system_target(system, 1)
        assert f"--system {system} runs the whole model: give the model, not a plan" in refusal(
            lambda system=system: check_system_target(system, 2, "metis"))
    mix = SimpleNamespace(members=[object(), object()], part_files=[Path("a.onnx"), Path("b.onnx")], split_method="")
    for system in ("roundrobin", "native", "ortparallel", "ortstreams"):
        s = SimpleNamespace(system=system, engine="real")
        assert refusal(lambda s=s: make_engine(s, mix)) == \
            f"--system {system} serves one model: a mix runs on staronnx or triton"


def campaign_of(tmp_path: Path, *sweeps):
    from staronnx_cli.fleet.campaign import Campaign, Kind

    return Campaign(tmp_path / "c.toml", "c", {"small": Kind("small", {"small": 1.0})}, list(sweeps))


def write_plan_dir(folder: Path, parts: int = 2, method: str = "topo") -> Path:
    """A plan directory read_plan accepts: a chain x -> part 0 -> h0 -> ... -> y, its part files dummy bytes."""
    import dataclasses

    from staronnx_cli.split.plan import EdgeSpec, PartSpec, Plan, TensorSpec

    names = ["x", *[f"h{i}" for i in range(parts - 1)], "y"]
    specs = [PartSpec(i, f"part_{i}.onnx", 1, 1, {"cpu": 2.0}, 1.0 / parts,
                      [TensorSpec(names[i], "float32", ["batch", 4], 16)],
                      [TensorSpec(names[i + 1], "float32", ["batch", 4], 16)], flops=1.0, bytes_moved=1.0)
             for i in range(parts)]
    edges = [EdgeSpec(i - 1, i, [names[i]], 16) for i in range(parts)]
    plan = Plan("/m.onnx", "ab", "costs.csv", "cd", "cpu", 1, method, "", 0, 0.5, 0.5, 16, specs, edges, ["x"], ["y"])
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(dataclasses.asdict(plan)))
    for i in range(parts):
        (folder / f"part_{i}.onnx").write_bytes(b"part %d" % i)
    return folder


def test_a_campaign_ships_each_target_with_its_own_platform_and_every_file_of_a_plan(tmp_path):
    """_shipments: two sweeps of one model on two platforms are two shipments, each with its own platform.toml (one
    id per target alone sent the second sweep the first one's machine); a plan is shipped with every file of its
    directory (plan.json, its parts, a note beside them), not the folders in it; a zoo model ships nothing but its
    platform."""
    from staronnx_cli.fleet.campaign import SweepSpec
    from staronnx_cli.fleet.run import _shipments

    (tmp_path / "a.toml").write_text("a")
    (tmp_path / "b.toml").write_text("b")
    plan = write_plan_dir(tmp_path / "plan")
    (plan / "notes.txt").write_text("n")
    (plan / "sub").mkdir()
    ships = _shipments(campaign_of(tmp_path, SweepSpec("a", "tiny_cnn", ("small",), engine="sim", platform="a.toml"),
                                   SweepSpec("b", "tiny_cnn", ("small",), engine="sim", platform="b.toml"),
                                   SweepSpec("p", "plan", ("small",))))
    assert ships == {"tiny_cnn|a.toml": {"platform.toml": b"a"}, "tiny_cnn|b.toml": {"platform.toml": b"b"},
                     "plan|": {"target/plan.json": (plan / "plan.json").read_bytes(), "target/part_0.onnx": b"part 0",
                               "target/part_1.onnx": b"part 1", "target/notes.txt": b"n"}}


def test_a_campaign_s_target_folder_and_platform_are_checked_before_ray_starts(tmp_path):
    """A target folder without plan.json is said as such under the sweep's name (not read_plan's 'no plan at'); a
    platform that is a folder is 'not a file' (it was read as one: IsADirectoryError, an internal error)."""
    from staronnx_cli.fleet.campaign import SweepSpec
    from staronnx_cli.fleet.run import _shipments

    (tmp_path / "empty").mkdir()
    said = refusal(lambda: _shipments(campaign_of(tmp_path, SweepSpec("e", "empty", ("small",)))))
    assert said == (f"campaign: [[sweep]] e: '{tmp_path / 'empty'}' is a directory without plan.json: give a plan "
                    "directory of staronnx split")
    (tmp_path / "platforms").mkdir()
    spec = SweepSpec("f", "tiny_cnn", ("small",), engine="sim", platform="platforms")
    assert refusal(lambda: _shipments(campaign_of(tmp_path, spec))) == \
        f"campaign: [[sweep]] f: platform '{tmp_path / 'platforms'}' is not a file"


def test_every_sweep_option_a_campaign_refusal_names_is_its_key():
    """campaign_words: each [[sweep]] key's option (--seed, --warmup, --workers, --engine, --system, --platform,
    --policy, --batch, --batches) is said as the key; an option of another command that only begins with one (split's
    --seeds) stays as it is."""
    from staronnx_cli.fleet.campaign import campaign_words

    text = ("--seed -1, --warmup -1, --workers x, --engine e, --system s, --platform p, --policy q, --batch 0, "
            "--batches 1, --seeds 0")
    assert campaign_words(text) == ("seed -1, warmup -1, workers x, engine e, system s, platform p, policy q, "
                                    "batch 0, batches 1, --seeds 0")


def test_a_campaign_sweep_s_settings_keep_every_batch_size_no_rates_when_auto_and_name_the_sweep():
    """SweepSpec.settings: three batch sizes are three (not the first two); rate auto has no rates of its own (the
    grid is fitted later, and check_grid's duration is not drawn from made-up ones); the command recorded in run.json
    names the campaign's [[sweep]]."""
    from staronnx_cli.fleet.campaign import SweepSpec

    s = SweepSpec("net8", "tiny_cnn", ("cpu",), batch="1,2,8").settings()
    assert (s.batch_sizes, s.rates, s.auto_rates) == ((1, 2, 8), (), True)
    assert s.command == "staronnx fleet: [[sweep]] net8"


# -- the memory ceiling profile runs under -----------------------------------------------------------------------------

class FakeResource:
    """The resource module's RLIMIT_DATA calls, recorded (a real lowered hard limit could not be raised again)."""

    RLIMIT_DATA, RLIM_INFINITY = 2, -1

    def __init__(self, soft: int, hard: int):
        self.limits, self.set = (soft, hard), []

    def getrlimit(self, which):
        assert which == self.RLIMIT_DATA
        return self.limits

    def setrlimit(self, which, limits):
        assert which == self.RLIMIT_DATA
        self.set.append(limits)
        self.limits = limits


def ceiling_with(monkeypatch, soft: int, hard: int, available: int | None, held: int = 100):
    """(what memory_ceiling yields, RLIMIT_DATA within it, the setrlimit calls) on a machine with `available`
    bytes to give and a process holding `held`."""
    from staronnx_cli import memlimit

    fake = FakeResource(soft, hard)
    monkeypatch.setitem(sys.modules, "resource", fake)
    monkeypatch.setattr(memlimit, "available_bytes", lambda: available)
    monkeypatch.setattr(memlimit, "_data_bytes", lambda: held)
    with memlimit.memory_ceiling() as ceiling:
        within = fake.limits
    return ceiling, within, fake.set


def test_the_ceiling_is_what_the_process_holds_plus_90_percent_of_what_is_left_never_above_a_limit_set(monkeypatch):
    """memory_ceiling: 100 bytes held and 1000 to give: 1000 (the data segment the process holds counts against
    RLIMIT_DATA), set for the work and the old limits put back after; a hard limit of 800 caps it; a soft limit of
    500 (ulimit -d) is lower and kept, not raised; one of 2000 is lowered to 1000 and restored; where the memory to
    give is not known, or resource is missing (not a Unix), nothing is set and None is yielded."""
    inf = FakeResource.RLIM_INFINITY
    assert ceiling_with(monkeypatch, inf, inf, 1000) == (1000, (1000, inf), [(1000, inf), (inf, inf)])
    assert ceiling_with(monkeypatch, inf, 800, 1000) == (800, (800, 800), [(800, 800), (inf, 800)])
    assert ceiling_with(monkeypatch, 500, inf, 1000) == (500, (500, inf), [])
    assert ceiling_with(monkeypatch, 1000, inf, 1000) == (1000, (1000, inf), [])
    assert ceiling_with(monkeypatch, 2000, inf, 1000) == (1000, (1000, inf), [(1000, inf), (2000, inf)])
    assert ceiling_with(monkeypatch, inf, inf, None) == (None, (inf, inf), [])
    from staronnx_cli import memlimit

    monkeypatch.setitem(sys.modules, "resource", None)  # import resource: ImportError
    with memlimit.memory_ceiling() as ceiling:
        assert ceiling is None


def test_memory_to_give_is_available_plus_free_swap_in_bytes_and_the_held_segment_is_vmdata(monkeypatch):
    """available_bytes: MemAvailable + SwapFree, in kB * 1024; a /proc/meminfo without one of them (or none: not
    Linux) is None, not a KeyError; _data_bytes: VmData (what RLIMIT_DATA counts, not VmRSS) in bytes, 0 where
    /proc/self/status cannot be read."""
    from staronnx_cli import memlimit

    files = {"/proc/meminfo": "MemTotal: 9000 kB\nMemAvailable:  2000 kB\nSwapFree:  48 kB\n",
             "/proc/self/status": "Name: python\nVmRSS:  9 kB\nVmData:  12 kB\n"}

    def read(path):
        if path not in files:
            raise OSError(path)
        return files[path]

    monkeypatch.setattr(memlimit, "Path", lambda path: SimpleNamespace(read_text=lambda: read(path)))
    assert (memlimit.available_bytes(), memlimit._data_bytes()) == (2048 * 1024, 12 * 1024)
    files["/proc/meminfo"] = "MemTotal: 9000 kB\nMemAvailable:  2000 kB\n"
    assert memlimit.available_bytes() is None
    del files["/proc/meminfo"], files["/proc/self/status"]
    assert (memlimit.available_bytes(), memlimit._data_bytes()) == (None, 0)


def test_an_allocation_refused_is_told_by_its_type_or_its_words_in_any_case():
    """out_of_memory: numpy's MemoryError; ONNX Runtime's bad_alloc and 'Failed to allocate' (capitalised as it says
    it); another error (a shape) is not, and is raised as itself."""
    from staronnx_cli.memlimit import out_of_memory

    assert out_of_memory(MemoryError()) and out_of_memory(RuntimeError("std::bad_alloc"))
    assert out_of_memory(RuntimeError("Failed to allocate memory for requested buffer of size 8"))
    assert out_of_memory(RuntimeError("CUDA error: OUT OF MEMORY"))
    assert not out_of_memory(RuntimeError("Invalid rank for input: x Got: 3 Expected: 2"))


def relu_model(tmp_path: Path, width: int = 4) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def profile_failing_at(monkeypatch, tmp_path: Path, error: Exception, ceiling: int | None):
    """profile_model over batches 1 and 4 of a one-Relu model whose batch 4 raises `error` under `ceiling`."""
    from contextlib import contextmanager

    from staronnx_cli.devices import parse_device
    from staronnx_cli.profile import profiler

    @contextmanager
    def fixed_ceiling():
        yield ceiling

    def batch(settings, model, specs, size, on_batch, recorder):
        if size == 4:
            raise error
        return SimpleNamespace(note="")

    monkeypatch.setattr(profiler, "memory_ceiling", fixed_ceiling)
    monkeypatch.setattr(profiler, "_profile_batch", batch)
    model = relu_model(tmp_path)
    return lambda: profiler.profile_model(profiler.ProfileSettings(model, parse_device("cpu"), [1, 4], runs=1))


def test_a_profile_out_of_memory_names_its_batch_and_the_ceiling_in_gib_and_other_errors_pass(monkeypatch, tmp_path):
    """profile_model: batch 4 of [1, 4] out of memory under a 3 GiB ceiling names batch 4 and 3 GiB; without a
    ceiling, no amount; any other error is raised as it is, not called out of memory."""
    model = tmp_path / "relu.onnx"
    said = refusal(profile_failing_at(monkeypatch, tmp_path, MemoryError(), 3 * 2**30))
    assert said == (f"profiling {model} at batch 4 ran out of memory (more than the 3 GiB this machine had to give): "
                    "profile a smaller --batch")
    said = refusal(profile_failing_at(monkeypatch, tmp_path, RuntimeError("std::bad_alloc"), None))
    assert said == f"profiling {model} at batch 4 ran out of memory: profile a smaller --batch"
    with pytest.raises(RuntimeError, match="^Invalid rank$"):
        profile_failing_at(monkeypatch, tmp_path, RuntimeError("Invalid rank"), 2**30)()


def test_the_memory_check_weighs_the_largest_batch_and_allows_exactly_the_machine_s_memory(monkeypatch, tmp_path):
    """check_memory: the inputs (1000 float32 a sample) and the largest tensor a node writes, at the batch asked,
    against page size x pages: exactly the machine's memory runs, a byte more is refused naming the batch;
    profile_model checks its largest batch, not its first."""
    import os

    from staronnx_cli import modelio
    from staronnx_cli.profile import profiler

    specs = [SimpleNamespace(shape=(1000,), dtype=np.dtype("float32"))]
    monkeypatch.setattr(modelio, "tensor_bytes_by_node", lambda model, batch: {"a": 10 * batch, "b": 1000 * batch})
    pages = {"SC_PAGE_SIZE": 1, "SC_PHYS_PAGES": 5000 * 4}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    profiler.check_memory(None, specs, 4)  # 16,000 of inputs and 4,000 of its largest tensor: 20,000 exactly
    pages["SC_PHYS_PAGES"] -= 1
    assert refusal(lambda: profiler.check_memory(None, specs, 4)).startswith("profiling batch 4 needs at least")
    checked = []
    monkeypatch.setattr(profiler, "check_memory", lambda model, specs, batch: checked.append(batch))
    monkeypatch.setattr(profiler, "_gpu_recorder", lambda device: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        from staronnx_cli.devices import parse_device

        profiler.profile_model(profiler.ProfileSettings(relu_model(tmp_path), parse_device("cpu"), [2, 8], runs=1))
    assert checked == [8]


# -- the entry point's signals -----------------------------------------------------------------------------------------

class Ended(Exception):
    """os._exit, called: the process would have ended there with this code."""


class Stream:
    """stdout or stderr whose flush is recorded, and may fail as a closed pipe (OSError) or file (ValueError) does."""

    def __init__(self, name: str, flushed: list, error: Exception | None = None):
        self.name, self.flushed, self.error = name, flushed, error

    def flush(self):
        self.flushed.append(self.name)
        if self.error:
            raise self.error

    def write(self, text):
        return len(text)


def ending(monkeypatch) -> tuple[list, list]:
    """os._exit replaced by one that records its code and raises Ended; stdout and stderr by failing Streams."""
    import os

    codes: list = []
    flushed: list = []

    def exit_now(code):
        codes.append(code)
        raise Ended

    monkeypatch.setattr(os, "_exit", exit_now)
    monkeypatch.setattr(sys, "stdout", Stream("out", flushed, ValueError("I/O operation on closed file")))
    monkeypatch.setattr(sys, "stderr", Stream("err", flushed, BrokenPipeError()))
    return codes, flushed


def test_the_first_signal_interrupts_the_second_is_ignored_and_the_third_ends_at_once_with_130(monkeypatch):
    """_interrupt: the first Ctrl-C or SIGTERM raises KeyboardInterrupt (the command cleans up and says its line); the
    second returns (it would cut that cleanup short); the third flushes stdout and stderr, each whatever its flush
    raises (a closed file, a broken pipe), and ends the process with 130."""
    from staronnx_cli.cli import entry

    codes, flushed = ending(monkeypatch)
    monkeypatch.setattr(entry, "_received", [])
    with pytest.raises(KeyboardInterrupt):
        entry._interrupt(signal.SIGTERM, None)
    try:
        second = entry._interrupt(signal.SIGINT, None)
    except KeyboardInterrupt:
        pytest.fail("the second signal interrupted the cleanup too")
    assert second is None and (codes, flushed) == ([], [])
    with pytest.raises(Ended):
        entry._interrupt(signal.SIGINT, None)
    assert (codes, flushed) == ([130], ["out", "err"])


def run_main(monkeypatch, app, sigint=signal.default_int_handler):
    """entry.main() with `app` as the Typer app, SIGINT first set to `sigint` and an earlier invocation's two
    signals counted: (its exit code, the exit handlers it registered)."""
    from staronnx_cli.cli import entry

    signal.signal(signal.SIGINT, sigint)
    monkeypatch.setattr(entry, "_received", [signal.SIGTERM, signal.SIGTERM])
    monkeypatch.setattr("staronnx_cli.cli.app.app", app)
    registered: list = []
    monkeypatch.setattr(entry.atexit, "register", registered.append)
    with pytest.raises(SystemExit) as stop:
        entry.main()
    return stop.value.code, registered


def test_main_counts_its_own_signals_handles_sigterm_and_a_default_ctrl_c_and_exits_with_the_command_s_code(
        monkeypatch):
    """main(): an earlier invocation's signals are forgotten (the first of this one interrupts); SIGTERM is handled
    as a Ctrl-C; Ctrl-C too where it was Python's default, not where it was ignored (a shell's background job); the
    command's code is the exit code; _ignore_signals is registered to run last."""
    from staronnx_cli.cli import entry

    seen: list = []

    def app(**kwargs):
        seen.append((list(entry._received), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)))
        return 3

    assert run_main(monkeypatch, app) == (3, [entry._ignore_signals])
    assert seen == [([], entry._interrupt, entry._interrupt)]
    assert run_main(monkeypatch, app, signal.SIG_IGN)[0] == 3
    assert seen[1] == ([], entry._interrupt, signal.SIG_IGN)


def test_after_the_command_one_signal_is_ignored_and_a_second_ends_at_once_with_the_command_s_code(monkeypatch):
    """_exit(3): Ctrl-C and SIGTERM alike are then one handler; its first signal is ignored (the exit code stays the
    command's), a second flushes what was said and ends the process with 3, not 130."""
    from staronnx_cli.cli import entry

    with pytest.raises(SystemExit) as stop:
        entry._exit(3)
    assert stop.value.code == 3
    handler = signal.getsignal(signal.SIGINT)
    assert callable(handler) and signal.getsignal(signal.SIGTERM) is handler
    codes, flushed = ending(monkeypatch)
    assert handler(signal.SIGTERM, None) is None and (codes, flushed) == ([], [])
    with pytest.raises(Ended):
        handler(signal.SIGINT, None)
    assert (codes, flushed) == ([3], ["out", "err"])


def test_the_last_exit_handler_ignores_ctrl_c_and_sigterm():
    """_ignore_signals: both ignored, not reset to their default (which kills the process by the signal: 130/143)."""
    from staronnx_cli.cli import entry

    entry._ignore_signals()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (signal.SIG_IGN, signal.SIG_IGN)


def test_an_interrupted_start_is_said_once_per_invocation_and_never_after_the_command_s_own_line(monkeypatch, capsys):
    """main() forgets that an earlier invocation said its line: interrupted while starting, it says so (exit 130);
    a command that said its own line, then was interrupted (KeyboardInterrupt, or Typer's silent exit 130), adds
    nothing."""
    from staronnx_cli.cli import common

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "told", True)  # an earlier invocation in this process said its line
    assert run_main(monkeypatch, interrupted)[0] == 130
    assert capsys.readouterr().err == "error: interrupted while starting; nothing was written\n"
    for made in (KeyboardInterrupt(), SystemExit(130)):
        def said_then_interrupted(made=made, **kwargs):
            common.told = True
            raise made

        assert run_main(monkeypatch, said_then_interrupted)[0] == 130
        assert capsys.readouterr().err == ""


# -- the native core's tensors: an output that is its part's own input -------------------------------------------------

def passing_chain(tmp_path: Path) -> list[Path]:
    """Three parts: x -Relu-> h; h x w (w a weight listed among the inputs, as older exporters did) -> z, with h
    passed through as an output too; h + z -> y."""
    import onnx
    from onnx import TensorProto, helper

    def value(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 4])

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [2.0] * 4)
    graphs = [helper.make_graph([helper.make_node("Relu", ["x"], ["h"], name="relu")], "p0", [value("x")],
                                [value("h")]),
              helper.make_graph([helper.make_node("Mul", ["h", "w"], ["z"], name="mul")], "p1",
                                [value("h"), helper.make_tensor_value_info("w", TensorProto.FLOAT, [4])],
                                [value("z"), value("h")], [weight]),
              helper.make_graph([helper.make_node("Add", ["h", "z"], ["y"], name="add")], "p2",
                                [value("h"), value("z")], [value("y")])]
    paths = []
    for i, graph in enumerate(graphs):
        paths.append(tmp_path / f"part_{i}.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(paths[-1]))
    return paths


def test_a_tensor_a_later_part_passes_through_is_a_copy_of_its_own_and_its_readers_read_the_maker_s(tmp_path):
    """PartTensors on a chain whose middle part passes h (made by part 0) through: the model's input is x alone (not
    the weight w, nor h); part 1's h goes to a slot of its own (not h's, which part 0 writes: one slot written
    twice), under its own name; part 2 reads h from part 0's slot; the slots are the model inputs first, then each
    part's outputs in order; part 1 depends on part 0 alone, part 2 on both."""
    from staronnx_cli.runtime import core

    tensors = core.PartTensors(passing_chain(tmp_path))
    assert tensors.model_inputs == ["x"] and tensors.deps == [[], [0], [0, 1]]
    assert tensors.slot == {"x": 0, "h": 1, "z": 2, core.PASSED + "h": 3, "y": 4}
    assert tensors.inputs == [[("x", 0)], [("h", 1)], [("h", 1), ("z", 2)]]
    assert tensors.outputs == [[("h", 1)], [("z", 2), ("h", 3)], [("y", 4)]]


def test_the_core_runs_a_chain_whose_middle_part_passes_a_tensor_through(tmp_path):
    """On the native core, that chain's y is relu(x) * 3 and part 1's passed-through h is relu(x): h written once by
    its maker, copied by the part that passes it on."""
    from staronnx_cli.load.schedule import BatchSchedule
    from staronnx_cli.runtime import core
    from staronnx_cli.runtime.perfmodel import PerfModel
    from staronnx_cli.runtime.policies import make_policy
    from staronnx_cli.runtime.scheduler import Limits
    from staronnx_cli.runtime.workers import parse_workers

    if core.unavailable():
        pytest.skip(core.unavailable())
    paths = passing_chain(tmp_path)
    tensors = core.PartTensors(paths)
    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), paths, 2)
    try:
        executor.core.keep_outputs(True)
        zeros = np.zeros(2)
        schedule = BatchSchedule(2, zeros, zeros, np.full(2, 2, dtype=np.int64), np.arange(2) * 2)
        records, why = core.CoreRunner(executor, make_policy("dmda"), PerfModel()).run(schedule, Limits(10**6, 1e9))
        assert why == "" and not any(r.error for r in records)
        relu = np.maximum(executor.arrays[0][:2], 0)
        for slot, expected in ((tensors.slot["y"], relu * 3), (tensors.slot[core.PASSED + "h"], relu)):
            data, shape, _ = executor.core.output(1, slot)
            np.testing.assert_allclose(np.frombuffer(data, dtype=np.float32).reshape(shape), expected)
    finally:
        executor.close()


# -- the judge: the rules of earlier judging versions, and the draining note ------------------------------------------

def batches_of(latency, period: float, task_s: float, step: int = 1, task_start=None) -> list:
    """Batches of one query released `period` apart (their indexes `step` apart: the others failed), each one task
    on worker 0 ending with the batch (from `task_start(t)` where given, else task_s before its end)."""
    from staronnx_cli.runtime.scheduler import BatchRecord, TaskRecord

    records = []
    for k, value in enumerate(latency):
        t = period * k
        record = BatchRecord(k * step, t, t, 1, k * step, actual_release_s=t, end_s=t + value)
        start = task_start(t) if task_start else t + value - task_s
        record.tasks.append(TaskRecord(0, 0, start, start + task_s))
        records.append(record)
    return records


def verdict_of(spec, records, capacity, service, may_settle=True, failed=False, busy=None, ideal_of=None):
    """judge_point on these batches, every one measured (the first at 0), worker 0 busy with their tasks."""
    from staronnx_cli.sweep.judge import Evidence, judge_point

    latency = np.array([r.end_s - r.first_arrival_s for r in records])
    if busy is None:
        busy = [[(t.start_s, t.end_s) for r in records for t in r.tasks]]
    ev = Evidence(records, latency, busy, capacity, service, service if ideal_of is None else ideal_of, 0, failed)
    return judge_point(spec, "", ev, may_settle)


def wobble(n: int, size: float = 1e-4) -> np.ndarray:
    return size * (-1.0) ** np.arange(n)


def test_a_point_exactly_at_the_capacity_still_rising_slowly_is_not_settled_not_beyond_it():
    """A rate equal to the capacity is within it: latency rising 1.5 % of elapsed time (below a lost load's 3 %,
    above the extensions' 0.5 %) after every extension is a queue still filling, a lower bound; not a rise 'at a
    rate beyond the workers' capacity', and not an uncongested point either."""
    from staronnx_cli.sweep.point import PointSpec

    t = np.arange(20) * 0.1
    verdict = verdict_of(PointSpec(1, 10.0, 0, 20, extensions=0), batches_of(0.01 + 0.015 * t + wobble(20), 0.1,
                                                                             0.005), 10.0, 0.005)
    assert verdict.reason == "" and verdict.note.startswith(
        "not settled: latency still rising after 20 batches, below the workers' capacity of 10 q/s"), verdict


def test_random_arrivals_with_failed_batches_are_weighed_against_their_releases_not_the_rate_asked():
    """Poisson arrivals, every other batch failed: what the measured batches served is read against their own
    releases (98.5 %: a burst's queue, not congestion), not against the 10 q/s asked (half of it, as if the failed
    batches' load were lost by a queue)."""
    from staronnx_cli.sweep.point import PointSpec

    t = np.arange(20) * 0.2
    records = batches_of(0.01 + 0.015 * t + wobble(20), 0.2, 0.005, step=2)
    verdict = verdict_of(PointSpec(1, 10.0, 0, 40, arrival="poisson", extensions=0), records, 20.0, 0.005,
                         failed=True)
    assert verdict.reason == "" and verdict.note.startswith(
        "not congested: latency grows 15 ms per s over its later batches, yet 98.5% of the load offered over the "
        "measured batches was served (a random burst's queue)"), verdict


def test_beyond_the_capacity_fixed_arrivals_are_not_judged_by_the_served_slope_of_random_ones():
    """Fixed arrivals beyond the capacity whose latency rose 30 % of elapsed time and fell back over the last 4
    batches: no trend over the later half or over all of them, and the window's ends lost no load; the slope of the
    queries served against their ends (92 % of the rate) is the rule of random arrivals only: no reason."""
    from staronnx_cli.sweep.point import PointSpec

    t = np.arange(20) * 0.1
    latency = 0.01 + 0.3 * t
    latency[-4:] = 0.01 + 0.0001 * np.arange(4)
    verdict = verdict_of(PointSpec(1, 10.0, 0, 20, extensions=0), batches_of(latency, 0.1, 0.005), 5.0, 0.2)
    assert (verdict.reason, verdict.note) == ("", ""), verdict


def sawtooth_batches() -> list:
    """Fixed arrivals at 1,000 q/s, one worker ~95 % busy: a 14-batch sawtooth rising over the later half of 20."""
    latency = 1e-3 * (1.0 + 0.05 * ((np.arange(20) + 8) % 14))
    return batches_of(latency, 1e-3, 0.95e-3)


def test_in_a_mix_a_rise_over_the_later_half_alone_is_congestion_not_a_queue_settling():
    """may_settle=False (a mix: the capacity is the model's alone, the workers shared): the later half's rise is
    the reason; only a single model's fixed stream below the capacity may read it as dmda's sawtooth."""
    from staronnx_cli.sweep.point import PointSpec

    spec = PointSpec(1, 1000.0, 0, 20)
    assert verdict_of(spec, sawtooth_batches(), 2000.0, 0.5e-3, ideal_of=0.95e-3).reason == ""
    mixed = verdict_of(spec, sawtooth_batches(), 2000.0, 0.5e-3, may_settle=False, ideal_of=0.95e-3)
    assert mixed.reason.startswith("latency grows") and mixed.note == "", mixed


def test_in_a_mix_batches_that_waited_behind_a_rise_with_an_idle_worker_are_a_disturbance():
    """A rise while the worker ran 5 of every 10 us and the batches waited for it: for one model's fixed stream that
    wait is a queue (congested); in a mix (may_settle=False) the batches wait behind the other models' tasks, so the
    idle worker makes it a disturbance."""
    from staronnx_cli.sweep.point import PointSpec

    spec = PointSpec(1, 125_000.0, 0, 40)
    records = batches_of([2e-6 * k + 5e-6 for k in range(40)], 8e-6, 5e-6, task_start=lambda t: t * 1.25)
    assert verdict_of(spec, records, 200_000.0, 5e-6).reason.startswith("latency grows")
    mixed = verdict_of(spec, records, 200_000.0, 5e-6, may_settle=False)
    assert mixed.reason == "" and mixed.note.startswith("not congested: latency grows") and \
        mixed.note.endswith("(a disturbance)"), mixed


def full_worker_batches(latency) -> list:
    """Batches every 10 ms, each a 20 ms task of worker 0 ending with it: the worker never rests."""
    return batches_of(latency, 0.01, 0.02)


def test_saturation_counts_the_workers_in_use_weighs_the_mean_latency_and_an_infinite_ideal():
    """Beyond the capacity (50 q/s at 100 q/s), no trend: worker 0 full and a second worker never given a task (not
    'in use': it does not make the point unsaturated) at 2.7 x the ideal is saturated; 1.8 x the ideal on average is
    not, though its slowest batches are 2.1 x; an ideal that is infinite (every worker beyond its own capacity) is
    saturated without a ratio."""
    from staronnx_cli.sweep.point import PointSpec

    spec = PointSpec(1, 100.0, 0, 40)
    wobbling = full_worker_batches(0.025 + 0.004 * (np.arange(40) % 2))
    two = [[(t.start_s, t.end_s) for r in wobbling for t in r.tasks], []]
    assert verdict_of(spec, wobbling, 50.0, 0.010, busy=two).reason == \
        "saturated: every worker in use at least 100% busy and latency 2.7 x the ideal"
    assert verdict_of(spec, full_worker_batches(0.015 + 0.006 * (np.arange(40) % 2)), 50.0, 0.010).reason == ""
    assert verdict_of(spec, wobbling, 50.0, 0.02, ideal_of=[0.02]).reason == \
        "saturated: every worker in use at least 100% busy at a rate beyond the workers' capacity of 50 q/s"


def test_a_not_settled_note_is_kept_over_a_fall_before_it_and_some_failed_batches_are_no_reason():
    """A latency that fell over the first half of 40 batches, then rose 5 % of elapsed time with the batches waiting
    for the worker: the note is 'not settled' (its latest state), not 'draining', though the whole window falls;
    a point some of whose batches failed, the rest flat, has no reason; one whose every batch failed says so."""
    from staronnx_cli.metrics.points import draining
    from staronnx_cli.sweep.judge import Evidence, judge_point
    from staronnx_cli.sweep.point import PointSpec

    t = np.arange(40) * 0.1
    latency = np.where(t < 2, 1.0 - 0.475 * t, 0.05 + 0.05 * (t - 2)) + wobble(40)
    assert draining(latency, t)
    note = verdict_of(PointSpec(1, 10.0, 0, 40, extensions=0), batches_of(latency, 0.1, 0.005), 100.0, 0.005).note
    assert note.startswith("not settled: latency still rising after 40 batches"), note
    flat = batches_of(0.01 + wobble(20), 0.1, 0.005, step=2)
    assert verdict_of(PointSpec(1, 10.0, 0, 40), flat, 100.0, 0.005, failed=True).reason == ""
    none = Evidence([], np.array([]), [[]], 100.0, 0.005, 0.005, 0, True)
    assert judge_point(PointSpec(1, 10.0, 0, 40), "", none).reason == "every batch failed"


def test_a_backlog_drains_from_a_fall_of_half_a_percent_of_elapsed_time():
    """draining(): 6 ms per s falling, significantly, is a backlog draining; 3 ms per s (below 0.5 % of elapsed
    time) is not."""
    from staronnx_cli.metrics.points import draining

    t = np.arange(12.0)
    assert draining(-0.006 * t + wobble(12), t) == "latency falls 6 ms per s"
    assert draining(-0.003 * t + wobble(12), t) == ""


# -- split: the costs a split is cut on --------------------------------------------------------------------------------

COSTS_HEADER = "node,op_type,device,batch_size,runs,mean_us,median_us,std_us,output_bytes,host_us,timing"


def costs_for(tmp_path: Path, rows: list[tuple], batch: int = 1, device: str | None = None):
    """_costs_for on a model const -> add -> neg (const a Constant: no compute) and costs.csv rows (node, device,
    batch, mean_us); (the Costs, the notes)."""
    import onnx
    from onnx import TensorProto, helper

    from staronnx_cli.split.splitter import _costs_for

    nodes = [helper.make_node("Constant", [], ["c"], name="const",
                              value=helper.make_tensor("v", TensorProto.FLOAT, [4], [1.0] * 4)),
             helper.make_node("Add", ["x", "c"], ["a"], name="add"), helper.make_node("Neg", ["a"], ["y"], name="neg")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / f"costs{len(list(tmp_path.glob('costs*.csv')))}.csv"
    path.write_text(COSTS_HEADER + "\n" + "".join(f"{n},Op,{d},{b},10,{us},{us},0,16,{us},cpu\n"
                                                  for n, d, b, us in rows))
    notes: list[str] = []
    onnx.checker.check_model(model)
    return _costs_for(model, "sha", path, batch, device, {"const"}, notes, False), notes


def test_the_zero_time_check_weighs_compute_nodes_alone_at_the_batch_used(tmp_path):
    """_costs_for: compute nodes of 0 us beside a constant of 5 us is no time to split by (a constant is folded,
    not cut on), said at the batch used (2, the nearest to 1 asked), on its device; a constant need not be in the
    file at all."""
    said = refusal(lambda: costs_for(tmp_path, [("const", "cpu:1", 2, 5), ("add", "cpu:1", 2, 0),
                                                ("neg", "cpu:1", 2, 0)]))
    assert "every compute node takes 0 us at batch 2 on cpu:1, no time to split by (edited?)" in said, said
    costs, notes = costs_for(tmp_path, [("add", "cpu:1", 1, 1), ("neg", "cpu:1", 1, 2)])
    assert costs.node_us == {"add": 1.0, "neg": 2.0} and notes == []


def test_costs_without_a_device_asked_are_the_file_s_first_device_and_keep_every_device_s_rows(tmp_path):
    """Without --device, the first device of the file is cut on (cpu:2 here, though cpu:1 sorts first); the table
    kept beside the times holds every device's rows at the batch chosen (for plan.json's comparison), none of
    another batch."""
    rows = [("add", "cpu:2", 1, 3), ("neg", "cpu:2", 1, 4), ("add", "cpu:1", 1, 1), ("neg", "cpu:1", 1, 2),
            ("add", "cpu:1", 8, 9), ("neg", "cpu:1", 8, 9)]
    costs, _ = costs_for(tmp_path, rows)
    assert (costs.device, costs.node_us) == ("cpu:2", {"add": 3.0, "neg": 4.0})
    assert sorted(zip(costs.table.device, costs.table.node)) == [("cpu:1", "add"), ("cpu:1", "neg"),
                                                                 ("cpu:2", "add"), ("cpu:2", "neg")]


def test_batches_waited_means_most_of_them_waited_not_one_long_wait():
    """judge._queued (J39): the median wait against the fastest S(N). One batch of ten held up 20 ms (a hiccup) moves
    the mean past a 1 ms task but not the median: not a queue; six of ten waiting 2 ms is one."""
    from staronnx_cli.runtime.scheduler import BatchRecord, TaskRecord
    from staronnx_cli.sweep.judge import _queued

    def later(waits):
        records = []
        for k, wait in enumerate(waits):
            record = BatchRecord(k, 0.01 * k, 0.01 * k, 1, k, actual_release_s=0.01 * k)
            record.tasks.append(TaskRecord(0, 0, 0.01 * k + wait, 0.01 * k + wait + 0.001))
            records.append(record)
        return records

    assert not _queued(later([0.0] * 9 + [0.020]), 0.001)
    assert _queued(later([0.0] * 4 + [0.002] * 6), 0.001)
    assert not _queued(later([]), 0.001) and not _queued(later([0.002] * 3), None)
