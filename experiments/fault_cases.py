"""The adversarial cases of issue 13, run as a user runs them: the installed `staronnx` in a fresh folder per case.

Each case sets up files, runs one or more commands (some interrupted, some on a read-only mount or under a file
size limit), and checks the exit code, the message and the files left behind. The result is a Markdown table
(stdout and --out), one row per case: what was tried, what was expected, what happened.

    python experiments/fault_cases.py --out results/faults.md [--only SUBSTRING]

Read-only cases need a bind mount (root); where that is refused they are reported as not run, never as passed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SWEEP = ["--workers", "cpu:1x1", "--batch", "1,2", "--rate", "50,100", "--batches", "5", "--warmup", "1"]
ENV = {**os.environ, "COLUMNS": "200", "STARONNX_CACHE": str(Path(tempfile.gettempdir()) / "staronnx-faults-cache")}


@dataclass
class Outcome:
    rc: int | None
    out: str
    err: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def staronnx(cwd: Path, *args, timeout: float = 120, limit_file_bytes: int | None = None,
             env_extra: dict[str, str] | None = None) -> Outcome:
    """One command, as a user types it; a hang is an outcome (rc None), not a stuck harness."""
    def limits():
        default_sigint()
        if limit_file_bytes is not None:  # a full disk, seen from the program: writes fail with EFBIG
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "staronnx_cli", *map(str, args)], cwd=cwd,
                              env={**ENV, **(env_extra or {})}, text=True, capture_output=True, timeout=timeout,
                              preexec_fn=limits)
        return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, str(exc.stdout or ""), str(exc.stderr or ""), time.perf_counter() - start)


def default_sigint() -> None:
    """In the child: Ctrl-C acts as at a terminal, even when this harness runs in the background (where the shell
    starts it with SIGINT ignored, which its children would inherit: Python then never sees a Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def one_line(o: Outcome, rc: int = 2, *fragments: str) -> str | None:
    """The bad-input contract: exit code, one line on stderr holding every fragment, no traceback."""
    if o.rc is None:
        return f"hung ({o.seconds:.0f} s)"
    if o.rc != rc:
        return f"exit {o.rc}, expected {rc}: {(o.lines or ['(nothing on stderr)'])[-1][:160]}"
    if "Traceback" in o.err + o.out:
        return "traceback"
    if rc and len(o.lines) != 1:
        return f"{len(o.lines)} lines on stderr"
    missing = [f for f in fragments if f not in (o.lines[0] if o.lines else "")]
    return f"message lacks {missing}: {o.lines[0][:160] if o.lines else ''}" if missing else None


def rows_of(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:] if path.exists() else []


def grid_complete(run: Path, sizes=(1, 2), rates=(50.0, 100.0)) -> str | None:
    """Each point once in points.csv, no torn row, no batch row twice."""
    import pandas as pd

    for name in ("points.csv", "batches.csv"):
        if not (run / name).read_text().endswith("\n"):
            return f"{name} ends in a torn row"
    points, batches = pd.read_csv(run / "points.csv"), pd.read_csv(run / "batches.csv")
    keys = sorted(zip(points.batch_size, points.rate_qps))
    if keys != sorted((n, r) for n in sizes for r in rates):
        return f"points {keys}"
    if batches.duplicated(["batch_size", "rate_qps", "batch_index"]).any():
        return "duplicate batch rows"
    return None


@dataclass
class Case:
    group: str
    tried: str
    expected: str
    run: Callable[[Path], str | None]  # None: as expected; otherwise what went wrong
    needs: set[str] = field(default_factory=set)


CASES: list[Case] = []


def case(group: str, tried: str, expected: str, needs: set[str] | None = None):
    def register(fn):
        CASES.append(Case(group, tried, expected, fn, needs or set()))
        return fn
    return register


def fixtures(base: Path) -> None:
    """tiny.onnx, its costs, a plan and a finished run: what a user has after the README's first steps."""
    steps = [("zoo", "build", "tiny_cnn", "-o", "tiny.onnx"),
             ("profile", "tiny.onnx", "--batch", "1", "--runs", "5", "--warmup", "1", "-o", "costs.csv"),
             ("split", "tiny.onnx", "--costs", "costs.csv", "-o", "plan"),
             ("sweep", "tiny.onnx", *SWEEP, "-o", "run")]
    for step in steps:
        o = staronnx(base, *step)
        if o.rc != 0:
            sys.exit(f"fixture step {' '.join(step)} failed: {o.err}")


# ---- --force replaces only what the command wrote -------------------------------------------------------------

@case("force", "`split -o . --force` in the folder holding the model and costs", "exit 2, nothing deleted")
def _(d):
    said = one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", ".", "--force"),
                    2, "which split does not write")
    return said or (None if (d / "tiny.onnx").exists() and (d / "costs.csv").exists() else "deleted")


@case("force", "`split -o results --force`, results/ holding another run", "exit 2, the run kept")
def _(d):
    (d / "results").mkdir()
    shutil.copytree(d / "run", d / "results" / "run")
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "results", "--force")) or (
        None if (d / "results/run/points.csv").exists() else "run deleted")


@case("force", "`split -o plan --force --costs plan/costs.csv` (the input inside the plan)", "exit 2, costs kept")
def _(d):
    shutil.copy(d / "costs.csv", d / "plan" / "costs.csv")
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "plan/costs.csv", "-o", "plan", "--force")) or (
        None if (d / "plan/costs.csv").exists() else "costs deleted")


@case("force", "`split -o plan --force` over a real plan", "exit 0, a new plan.json")
def _(d):
    before = (d / "plan/plan.json").stat().st_mtime_ns
    o = staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "plan", "--force", "--offload", "0.2")
    return one_line(o, 0) or (None if (d / "plan/plan.json").stat().st_mtime_ns != before else "not replaced")


@case("force", "`split -o plan` without --force over a plan", "exit 2, plan kept")
def _(d):
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "plan"), 2, "--force")


@case("force", "`split -o costs.csv` (an existing file)", "exit 2, file kept")
def _(d):
    text = (d / "costs.csv").read_text()
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "costs.csv", "--force")) or (
        None if (d / "costs.csv").read_text() == text else "costs changed")


@case("force", "`sweep --force` into a run folder that also holds a user's notes", "exit 0, notes kept")
def _(d):
    (d / "run" / "notes.txt").write_text("mine\n")
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--force"), 0) or (
        None if (d / "run/notes.txt").exists() else "notes deleted")


@case("force", "`profile -o costs.csv` over existing costs without --force", "exit 2, costs kept")
def _(d):
    return one_line(staronnx(d, "profile", "tiny.onnx", "--batch", "1", "--runs", "2", "-o", "costs.csv"), 2,
                    "--force")


@case("force", "`report -o` over an existing report without --force", "exit 2")
def _(d):
    (d / "report.md").write_text("mine\n")
    return one_line(staronnx(d, "report", "run", "-o", "report.md"), 2) or (
        None if (d / "report.md").read_text() == "mine\n" else "overwritten")


# ---- crash-safe result files -------------------------------------------------------------------------------------

def tear(path: Path, keep_chars: int = 25) -> None:
    """Cut the last row mid-line, as a crash or a full disk leaves it."""
    text = path.read_text().rstrip("\n")
    path.write_text(text[: text.rfind("\n") + 1 + keep_chars])


@case("torn", "points.csv cut mid-row, then `sweep --resume`", "notice, row cut, grid completed once")
def _(d):
    tear(d / "run/points.csv")
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume")
    return one_line(o, 0) or (None if "incomplete" in o.out + o.err else "no notice") or grid_complete(d / "run")


@case("torn", "points.csv cut mid-row, then `plot --table`", "the torn row is not a point")
def _(d):
    tear(d / "run/points.csv")
    o = staronnx(d, "plot", "run", "--table")
    return one_line(o, 0) or (None if o.out.count("100") >= 1 and "nan" not in o.out.lower() else o.out[-300:])


@case("torn", "points.csv cut mid-row, then `plot --kind timeline` and `trace`", "both work")
def _(d):
    tear(d / "run/points.csv")
    tear(d / "run/batches.csv")
    return (one_line(staronnx(d, "plot", "run", "--kind", "timeline", "--batch-size", "1", "--rate", "50",
                              "-o", "t.png"), 0)
            or one_line(staronnx(d, "trace", "run", "--batch-size", "1", "--rate", "50", "-o", "t.json"), 0))


@case("torn", "batches.csv holds rows of a point whose points.csv row is missing, then `--resume`",
      "those rows dropped, no duplicates")
def _(d):
    lines = (d / "run/points.csv").read_text().splitlines(keepends=True)
    (d / "run/points.csv").write_text("".join(lines[:-1]))  # the last point never committed
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume")
    return one_line(o, 0) or grid_complete(d / "run")


@case("torn", "points.csv emptied (0 bytes), then `sweep --resume`", "a notice, the run begun again, grid completed")
def _(d):
    (d / "run/points.csv").write_text("")
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume")
    return one_line(o, 0) or (None if "points.csv was empty" in o.out + o.err else "no notice") or \
        grid_complete(d / "run")


@case("torn", "points.csv overwritten with binary garbage, then `sweep --resume`",
      "exit 2 naming points.csv, batches.csv unchanged")
def _(d):
    (d / "run/points.csv").write_bytes(bytes(range(256)) * 2)
    before = (d / "run/batches.csv").read_bytes()
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume")
    return one_line(o, 2, "points.csv", "not a result file") or (
        None if (d / "run/batches.csv").read_bytes() == before else "batches.csv changed")


@case("torn", "points.csv saved by an editor with blank lines between rows (CR CR LF), then `sweep --resume`",
      "grid completed")
def _(d):
    text = (d / "run/points.csv").read_bytes()
    (d / "run/points.csv").write_bytes(text.replace(b"\r\n", b"\r\r\n"))
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume"), 0) or grid_complete(d / "run")


@case("torn", "run.json cut in half, then `--resume`", "exit 2, one line naming run.json")
def _(d):
    text = (d / "run/run.json").read_text()
    (d / "run/run.json").write_text(text[: len(text) // 2])
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume"), 2, "run.json")


@case("torn", "run.json cut in half, then `plot`", "exit 2, one line naming run.json")
def _(d):
    text = (d / "run/run.json").read_text()
    (d / "run/run.json").write_text(text[: len(text) // 2])
    return one_line(staronnx(d, "plot", "run", "-o", "e.png"), 2, "run.json")


@case("torn", "plan.json cut in half, then `sweep plan`", "exit 2, one line naming plan.json")
def _(d):
    text = (d / "plan/plan.json").read_text()
    (d / "plan/plan.json").write_text(text[: len(text) // 2])
    return one_line(staronnx(d, "sweep", "plan", *SWEEP, "-o", "r2"), 2, "plan.json")


@case("torn", "costs.csv cut mid-row, then `split`", "exit 2, one line naming costs.csv")
def _(d):
    tear(d / "costs.csv", 5)
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "p2"), 2, "costs.csv")


@case("torn", "a torn performance-model cache file, then a sweep", "notice naming the file, sweep runs")
def _(d):
    cache = Path(ENV["STARONNX_CACHE"]) / "perfmodels"
    for f in cache.glob("*.json"):
        f.write_text(f.read_text()[:20])
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "r2")
    return one_line(o, 0) or (None if "perfmodels" in o.out + o.err else "no notice")


@case("torn", "a performance-model cache that cannot be written (a file where its folder goes)",
      "one warning, every point measured, exit 0")
def _(d):
    cache = d / "cache"
    cache.mkdir()
    (cache / "perfmodels").write_text("not a folder")
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "r3", env_extra={"STARONNX_CACHE": str(cache)})
    return one_line(o, 0) or (None if len(rows_of(d / "r3/points.csv")) == 4 else "points missing")


@case("outputs", "`sweep ... | head -1`: the reader goes away after one line", "exit 0, every point measured")
def _(d):
    proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", "tiny.onnx", *SWEEP, "-o", "piped"],
                            cwd=d, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()
    rc = proc.wait(timeout=300)
    err = proc.stderr.read() if proc.stderr else ""
    if rc != 0:
        return f"exit {rc}: {err[-200:]}"
    return None if len(rows_of(d / "piped/points.csv")) == 4 else "points missing"


# ---- numbers at the edge ----------------------------------------------------------------------------------------

def refused(args: list[str], *fragments: str, subject="tiny.onnx", command="sweep", extra=SWEEP):
    def check(d):
        o = staronnx(d, command, subject, *extra, *args, "-o", "out")
        return one_line(o, 2, *fragments) or (None if o.seconds < 30 else f"took {o.seconds:.0f} s")
    return check


for args, fragments, what in [
    (["--rate", "nan"], ["--rate"], "`--rate nan`"),
    (["--rate", "inf"], ["--rate"], "`--rate inf`"),
    (["--rate", "-5"], ["--rate"], "`--rate -5`"),
    (["--rate", "0"], ["--rate"], "`--rate 0`"),
    (["--rate", "10:100:1e-9"], ["--rate"], "`--rate 10:100:1e-9` (90 billion rates)"),
    (["--rate", "abc"], ["--rate"], "`--rate abc`"),
    (["--batches", "100000000"], ["at most 1,000,000 batches"], "`--batches 100000000`"),
    (["--batches", "1000000"], ["--max-hours"], "`--batches 1000000`"),
    (["--batches", "1000000", "--max-hours", "1e9", "--max-memory", "0.5"], ["--max-memory"],
     "`--batches 1000000 --max-hours 1e9 --max-memory 0.5`"),
    (["--batches", "0"], ["--batches"], "`--batches 0`"),
    (["--warmup", "-1"], ["--warmup"], "`--warmup -1`"),
    (["--batch", "100000"], ["--max-memory"], "`--batch 100000` (15 GiB of tensors)"),
    (["--batch", "100000", "--max-memory", "100", "--rate", "10:100:10"], ["--max-hours"],
     "`--batch 100000 --max-memory 100` at 10 to 100 q/s (447 h of arrivals)"),
    (["--max-hours", "nan"], ["--max-hours"], "`--max-hours nan`"),
    (["--batch", "0"], ["--batch"], "`--batch 0`"),
    (["--batch", "1,x"], ["--batch"], "`--batch 1,x`"),
    (["--max-queue-delay", "nan"], ["--max-queue-delay"], "`--max-queue-delay nan`"),
    (["--max-queue-delay", "-1"], ["--max-queue-delay"], "`--max-queue-delay -1`"),
    (["--seed", "-1"], ["--seed"], "`--seed -1`"),
    (["--triton-port", "70000"], ["--triton-port"], "`--triton-port 70000`"),
    (["--max-memory", "nan"], ["--max-memory"], "`--max-memory nan`"),
    (["--max-memory", "0.000001"], ["--max-memory"], "`--max-memory 0.000001`"),
    (["--workers", "cpu:0"], ["--workers"], "`--workers cpu:0`"),
    (["--workers", "cpu:1x999"], ["--workers"], "`--workers cpu:1x999` (more cores than the machine)"),
    (["--policy", "bogus"], ["--policy"], "`--policy bogus`"),
    (["--arrival", "trace:missing.txt"], ["missing.txt"], "`--arrival trace:` a file that does not exist"),
]:
    case("numbers", what, "exit 2 at once, one line naming the option")(refused(args, *fragments))

for content, what in [("0\n0.1\nnan\n0.3\n", "NaN"), ("0\ninf\n", "inf"), ("", "nothing"),
                      ("0\n-1\n0.5\n", "a negative time"), ("0\nabc\n", "text")]:
    def _trace(d, content=content):
        (d / "t.txt").write_text(content)
        o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "--arrival", "trace:t.txt", "-o", "out")
        return one_line(o, 2, "t.txt")
    case("numbers", f"an arrival trace holding {what}", "exit 2 at once, one line naming the file")(_trace)

for args, option, what in [(["--offload", "nan"], "--offload", "`split --offload nan`"),
                           (["--offload", "1.5"], "--offload", "`split --offload 1.5`"),
                           (["--tolerance", "nan"], "--tolerance", "`split --tolerance nan`"),
                           (["--parts", "0"], "--parts", "`split --parts 0`"),
                           (["--seeds", "0"], "--seeds", "`split --seeds 0`"),
                           (["--batch", "0"], "--batch", "`split --batch 0`")]:
    case("numbers", what, "exit 2, one line naming the option")(
        refused(args, option, command="split", extra=["--costs", "costs.csv"]))

for args, option, what in [(["--runs", "0"], "--runs", "`profile --runs 0`"),
                           (["--batch", "-3"], "--batch", "`profile --batch -3`"),
                           (["--warmup", "-1"], "--warmup", "`profile --warmup -1`")]:
    case("numbers", what, "exit 2, one line naming the option")(refused(args, option, command="profile", extra=[]))


def _costs_with(value: str):
    def check(d):
        import pandas as pd

        costs = pd.read_csv(d / "costs.csv")
        column = "mean_us" if "mean_us" in costs.columns else costs.select_dtypes("number").columns[-1]
        costs[column] = costs[column].astype(object)
        costs.loc[0, column] = value
        costs.to_csv(d / "costs.csv", index=False)
        return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "p2"), 2, "costs.csv")
    return check


case("numbers", "costs.csv with a NaN time", "exit 2, one line naming the file")(_costs_with("nan"))
case("numbers", "costs.csv with a negative time", "exit 2, one line naming the file")(_costs_with("-5"))


@case("numbers", "costs.csv without its columns (some other CSV)", "exit 2, one line naming the file")
def _(d):
    (d / "costs.csv").write_text("a,b\n1,2\n")
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "p2"), 2, "costs.csv")


def _platform_with(old: str, new: str):
    def check(d):
        text = (HERE / "platforms" / "h100_googlenet_whole.toml").read_text()
        assert old in text, old
        (d / "p.toml").write_text(text.replace(old, new, 1))
        o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "--engine", "sim", "--platform", "p.toml", "-o", "out")
        return one_line(o, 2, "p.toml")
    return check


case("numbers", "a platform file with a NaN figure", "exit 2, one line naming the file")(
    _platform_with("bandwidth_GBps = 12.0", "bandwidth_GBps = nan"))
case("numbers", "a platform file with a negative bandwidth", "exit 2, one line naming the file")(
    _platform_with("bandwidth_GBps = 12.0", "bandwidth_GBps = -1.0"))


@case("numbers", "`--rate 1e9 --batches 5` (far beyond capacity, few batches)",
      "congested, not rho_max 1e9; exit 3 (no answer)")
def _(d):
    import pandas as pd

    o = staronnx(d, "sweep", "tiny.onnx", "--workers", "cpu:1x1", "--batch", "1", "--rate", "1e9", "--batches",
                 "5", "--warmup", "1", "-o", "out")
    if o.rc != 3 or "Traceback" in o.err:  # 3: the sweep ran, no point was uncongested
        return f"exit {o.rc}, expected 3"
    return None if bool(pd.read_csv(d / "out/points.csv").congested.iloc[0]) else "judged uncongested"


# ---- models and plans -------------------------------------------------------------------------------------------

def model_case(prepare: Callable[[Path], str], *fragments: str):
    def check(d):
        o = staronnx(d, "sweep", prepare(d), *SWEEP, "-o", "out", timeout=60)
        return one_line(o, 2, *fragments) or (None if not (d / "out/points.csv").exists() else "points written")
    return check


def _link_zero(d):
    os.symlink("/dev/zero", d / "zero.onnx")
    return "zero.onnx"


def _write(name: str, data: bytes):
    def make(d):
        (d / name).write_bytes(data)
        return name
    return make


def _external_outside(d):
    import onnx

    model = onnx.load(d / "tiny.onnx")
    onnx.save(model, d / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
              size_threshold=0)
    model = onnx.load(d / "ext.onnx", load_external_data=False)
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../../../etc/passwd"
    onnx.save(model, d / "ext.onnx")
    return "ext.onnx"


def _bad_op(d):
    import onnx

    model = onnx.load(d / "tiny.onnx")
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save(model, d / "bad.onnx")
    return "bad.onnx"


for prepare, fragments, what in [
    (_link_zero, ["zero.onnx"], "a model path that is a link to /dev/zero"),
    (lambda d: "missing.onnx", ["missing.onnx"], "a model file that does not exist"),
    (lambda d: (d / "dir.onnx").mkdir() or "dir.onnx", ["dir.onnx"], "a model path that is a folder"),
    (_write("garbage.onnx", os.urandom(4096)), ["garbage.onnx"], "a model file of random bytes"),
    (_write("empty.onnx", b""), ["empty.onnx"], "an empty model file"),
    (_external_outside, ["ext.onnx"], "external data whose path leaves the model's folder"),
    (_bad_op, ["bad.onnx"], "a valid ONNX file ONNX Runtime cannot load (unknown operator)"),
]:
    case("models", what, "exit 2 before any point, one line naming it")(model_case(prepare, *fragments))


@case("plans", "a plan part changed after the split", "exit 2, sha256 mismatch named")
def _(d):
    with open(d / "plan/part_1.onnx", "ab") as f:
        f.write(b"\0")
    return one_line(staronnx(d, "sweep", "plan", *SWEEP, "-o", "out"), 2, "part_1.onnx")


@case("plans", "plan.json naming a part outside the plan folder", "exit 2, one line")
def _(d):
    path = d / "plan/plan.json"
    path.write_text(path.read_text().replace('"part_1.onnx"', '"../tiny.onnx"'))
    return one_line(staronnx(d, "sweep", "plan", *SWEEP, "-o", "out"), 2, "plan")


@case("plans", "a plan folder without plan.json", "exit 2, one line")
def _(d):
    (d / "plan/plan.json").unlink()
    return one_line(staronnx(d, "sweep", "plan", *SWEEP, "-o", "out"), 2, "plan")


# ---- one writer per run directory -------------------------------------------------------------------------------

def _concurrent(second_args: list[str]):
    def check(d):
        long = ["--workers", "cpu:1x1", "--batch", "1", "--rate", "20", "--batches", "60", "--warmup", "1"]
        first = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", "tiny.onnx", *long, "-o", "busy"],
                                 cwd=d, env=ENV, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(300):  # until it holds the lock
            if (d / "busy/.staronnx.lock").exists() and (d / "busy/.staronnx.lock").read_text().strip():
                break
            time.sleep(0.1)
        second = staronnx(d, "sweep", "tiny.onnx", *long, "-o", "busy", *second_args)
        _, err = first.communicate(timeout=300)
        if first.returncode != 0:
            return f"the first sweep failed: {err[-200:]}"
        return one_line(second, 2, f"pid {first.pid}") or (
            None if len(rows_of(d / "busy/points.csv")) == 1 else "rows mixed")
    return check


case("lock", "two sweeps into one -o at once", "the second: exit 2 naming the holder's pid; one point")(
    _concurrent(["--resume"]))
case("lock", "a `--force` sweep into a run being written", "exit 2 naming the pid; the run intact")(
    _concurrent(["--force"]))


@case("lock", "`split -o plan --force` while another command holds plan/", "exit 2 naming the pid; the plan intact")
def _(d):
    before = {p.name: p.read_bytes() for p in (d / "plan").iterdir() if p.name != ".staronnx.lock"}
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from staronnx_cli.dirlock import run_lock\n"
                               "with run_lock(__import__('pathlib').Path('plan')):\n    print('held', flush=True)\n"
                               "    time.sleep(60)"], cwd=d, env=ENV, text=True, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        o = staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "--offload", "0.2", "-o", "plan", "--force")
    finally:
        holder.kill()
        holder.wait()
    after = {p.name: p.read_bytes() for p in (d / "plan").iterdir() if p.name != ".staronnx.lock"}
    return one_line(o, 2, f"pid {holder.pid}") or (None if after == before else "the plan changed")


@case("lock", "a stale run folder (run.json, no points.csv), then a sweep without flags", "replaced, exit 0")
def _(d):
    (d / "stale").mkdir()
    (d / "stale/run.json").write_text('{"model": "other"}\n')
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "stale")
    return one_line(o, 0) or (None if "tiny" in (d / "stale/run.json").read_text() else "old run.json kept")


# ---- inputs that never end, counts checked before anything is built (issue 26) ---------------------------------

def _mix_with(d: Path, arrival: str) -> Path:
    (d / "mix.toml").write_text(f'[[model]]\nmodel = "tiny.onnx"\nrate = 50\nbatch = 1\narrival = "{arrival}"\n')
    return d / "mix.toml"


@case("inputs", "a mix whose arrival is `trace:/dev/zero`", "exit 2, one line, at once")
def _(d):
    o = staronnx(d, "sweep", "--mix", _mix_with(d, "trace:/dev/zero"), "--workers", "cpu:1x1", "-o", "m",
                 timeout=30)
    return one_line(o, 2, "not a regular file") or (None if o.seconds < 20 else f"took {o.seconds:.0f} s")


@case("inputs", "a mix whose arrival trace is a FIFO nobody writes", "exit 2, one line, at once")
def _(d):
    os.mkfifo(d / "trace.fifo")
    o = staronnx(d, "sweep", "--mix", _mix_with(d, "trace:trace.fifo"), "--workers", "cpu:1x1", "-o", "m",
                 timeout=30)
    return one_line(o, 2, "not a regular file")


@case("inputs", "`sweep --input-data` a FIFO nobody writes", "exit 2, one line, at once")
def _(d):
    os.mkfifo(d / "samples.npz")
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "--input-data", "samples.npz", "-o", "r", timeout=30),
                    2, "not a regular file")


@case("inputs", "`sweep --input-data` a .npz cut in half (a torn copy)", "exit 2, one line naming the file")
def _(d):
    import numpy as np

    np.savez(d / "samples.npz", image=np.zeros((4, 3, 32, 32), np.float32))
    whole = (d / "samples.npz").read_bytes()
    (d / "samples.npz").write_bytes(whole[: len(whole) // 2])
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "--input-data", "samples.npz", "-o", "r"), 2,
                    "samples.npz' cannot be read")


@case("inputs", "`profile --input-data` perf_analyzer JSON with base64 content", "exit 2, one line, the fix named")
def _(d):
    (d / "data.json").write_text('{"data": [{"image": {"b64": "AAAA"}}]}')
    return one_line(staronnx(d, "profile", "tiny.onnx", "--input-data", "data.json", "-o", "c2.csv"), 2,
                    'is base64 ("b64")', '"content" list')


@case("inputs", "`sweep --resume` of a finished run with another --input-data", "exit 2, the run's rows unchanged")
def _(d):
    before = rows_of(d / "run" / "points.csv")
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "--input-data", "zeros", "-o", "run", "--resume")
    return one_line(o, 2, "input_data = 'random'", "'zeros'") or (
        None if rows_of(d / "run" / "points.csv") == before else "rows changed")


@case("inputs", "`split --costs` a FIFO nobody writes", "exit 2, one line, at once")
def _(d):
    os.mkfifo(d / "costs.fifo")
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.fifo", "-o", "p", timeout=30), 2,
                    "not a regular file")


@case("inputs", "a platform file with `count = 1000000000` workers", "exit 2, one line, no memory eaten")
def _(d):
    (d / "p.toml").write_text('[[workers]]\nkind = "cpu"\ncount = 1000000000\ncores = 1\n')
    return one_line(staronnx(d, "sweep", "tiny.onnx", "--engine", "sim", "--platform", "p.toml", "-o", "s",
                             timeout=30), 2, "count = 1000000000")


@case("inputs", "a mix of 10 models with 10 batch sizes each (10^10 combinations)", "exit 2, one line, at once")
def _(d):
    models = "".join(f'[[model]]\nname = "m{i}"\nmodel = "tiny.onnx"\nrate = 10\nbatch = [1,2,3,4,5,6,7,8,9,10]\n\n'
                     for i in range(10))
    (d / "big.toml").write_text(models)
    o = staronnx(d, "sweep", "--mix", "big.toml", "--workers", "cpu:1x1", "-o", "m", timeout=30)
    return one_line(o, 2, "10000000000 combinations") or (None if o.seconds < 20 else f"took {o.seconds:.0f} s")


def _speed_platform(d: Path, costs: str, factor: str) -> str:
    (d / "p.toml").write_text(f'[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n\n[[speeds]]\nkind = "cpu:1"\n'
                              f'costs = "{costs}"\nfactor = {factor}\n')
    return "p.toml"


@case("inputs", "a platform whose [[speeds]] costs file holds a negative time", "exit 2, one line naming the row")
def _(d):
    lines = (d / "costs.csv").read_text().splitlines()
    column = lines[0].split(",").index("mean_us")
    row = lines[1].split(",")
    row[column] = "-1000000"
    (d / "neg.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    platform = _speed_platform(d, "neg.csv", "1")
    return one_line(staronnx(d, "sweep", "tiny.onnx", "--engine", "sim", "--platform", platform, "--batch", "1",
                             "--rate", "50", "-o", "s"), 2, "not negative")


@case("inputs", "a platform with `factor = 1e308`", "exit 2, one line naming the figure")
def _(d):
    return one_line(staronnx(d, "sweep", "tiny.onnx", "--engine", "sim", "--platform",
                             _speed_platform(d, "costs.csv", "1e308"), "--batch", "1", "--rate", "50", "-o", "s"),
                    2, "'factor'")


@case("inputs", "`advise --rate 1e-300`", "exit 2, one line")
def _(d):
    return one_line(staronnx(d, "advise", "tiny.onnx", "--rate", "1e-300", "-o", "a"), 2, "at least 0.01")


@case("outputs", "`sweep -o` a name of 300 characters", "exit 2, one line")
def _(d):
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "x" * 300), 2, "255 bytes")


@case("inputs", "a run folder whose `.staronnx.lock` links to a file outside it", "exit 2, that file unchanged")
def _(d):
    (d / "precious.txt").write_text("mine\n")
    (d / "r").mkdir()
    (d / "r" / ".staronnx.lock").symlink_to(d / "precious.txt")
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "r")
    return one_line(o, 2, "symbolic link") or (None if (d / "precious.txt").read_text() == "mine\n" else "truncated")


@case("inputs", "`plot --kind nodes` a FIFO nobody writes", "exit 2, one line, at once")
def _(d):
    os.mkfifo(d / "costs.fifo")
    return one_line(staronnx(d, "plot", "costs.fifo", "--kind", "nodes", timeout=30), 2, "not a regular file")


@case("inputs", "a costs file whose sidecar (costs.meta.json) is a FIFO, then `split`", "exit 2, one line, at once")
def _(d):
    (d / "costs.meta.json").unlink(missing_ok=True)
    os.mkfifo(d / "costs.meta.json")
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "costs.csv", "-o", "p2", timeout=30), 2,
                    "not a regular file")


@case("inputs", "a run whose run.json is a FIFO, then `plot` and `sweep --resume`", "exit 2, one line each, at once")
def _(d):
    (d / "run/run.json").unlink()
    os.mkfifo(d / "run/run.json")
    return (one_line(staronnx(d, "plot", "run", "--table", timeout=30), 2, "not a regular file")
            or one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume", timeout=30), 2,
                        "not a regular file"))


@case("inputs", "a plan whose plan.json is a FIFO, then `sweep plan`", "exit 2, one line, at once")
def _(d):
    (d / "plan/plan.json").unlink()
    os.mkfifo(d / "plan/plan.json")
    return one_line(staronnx(d, "sweep", "plan", *SWEEP, "-o", "s", timeout=30), 2, "not a regular file")


@case("inputs", "`advise` a model that is a FIFO", "exit 2, one line, at once")
def _(d):
    os.mkfifo(d / "m.onnx")
    return one_line(staronnx(d, "advise", "m.onnx", "--rate", "50", "-o", "a", timeout=30), 2, "not a regular file")


@case("inputs", "`advise --rate 0.02`: real confirmation would take hours", "exit 2 at once, the estimate said")
def _(d):
    o = staronnx(d, "advise", "tiny.onnx", "--rate", "0.02", "-o", "a", timeout=60)
    return one_line(o, 2, "confirming for real alone takes at least 1,650 s", "--no-confirm") or \
        (None if not (d / "a").exists() else "wrote into -o")


@case("inputs", "`advise --platform` with 30 worker groups (2^30 subsets)", "exit 2 at once, no file written")
def _(d):
    groups = "".join(f'[[workers]]\nkind = "cpu"\ncount = {c}\ncores = 1\n' for c in range(1, 31))
    (d / "p.toml").write_text(groups + '[[times]]\npart = 0\nkind = "cpu:1"\nbatch = 1\nmean_ms = 1.0\n')
    o = staronnx(d, "advise", "tiny.onnx", "--rate", "50", "--platform", "p.toml", "-o", "a", timeout=60)
    return one_line(o, 2, "1,073,741,823 layouts", "--max-layouts") or \
        (None if not (d / "a").exists() else "wrote into -o")


@case("inputs", "`--trust-platform` with one-part times of another model", "exit 2, one line naming it")
def _(d):
    times = '[[times]]\npart = 0\nkind = "cpu:1"\nbatch = 1\nmean_ms = 1.0\n'
    (d / "p.toml").write_text(f'target_sha256 = "{"ab" * 32}"\n[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n'
                              + times)
    return one_line(staronnx(d, "sweep", "tiny.onnx", "--engine", "sim", "--platform", "p.toml", "--trust-platform",
                             "--batch", "1", "--rate", "50", "-o", "s"), 2, "another model")


@case("inputs", "`platform from-run` after a later sweep at other batch sizes", "the run's own N only")
def _(d):
    later = staronnx(d, "sweep", "tiny.onnx", "--workers", "cpu:1x1", "--batch", "8", "--rate", "50",
                     "--batches", "3", "--warmup", "1", "-o", "later")
    o = staronnx(d, "platform", "from-run", "run", "-o", "p.toml")
    batches = {line.split("=")[1].strip() for line in (d / "p.toml").read_text().splitlines()
               if line.startswith("batch =")} if (d / "p.toml").exists() else set()
    return one_line(later, 0) or one_line(o, 0) or (None if batches == {"1", "2"} else f"batch sizes {batches}")


@case("inputs", "`platform from-run` on a run whose batches.csv is empty", "exit 0: the run's calibration times")
def _(d):
    (d / "run/batches.csv").write_text("")
    o = staronnx(d, "platform", "from-run", "run", "-o", "p.toml")
    return one_line(o, 0) or (None if "mean_ms" in (d / "p.toml").read_text() else "no task time")


@case("outputs", "`platform from-run run -o run/run.json --force`", "exit 2, the run's files unchanged")
def _(d):
    before = (d / "run/run.json").read_text()
    o = staronnx(d, "platform", "from-run", "run", "-o", "run/run.json", "--force")
    return one_line(o, 2, ".toml") or (None if (d / "run/run.json").read_text() == before else "overwritten")


@case("lock", "a stale run folder (batches.csv, no points.csv), then a sweep", "started over whole, exit 0")
def _(d):
    (d / "stale").mkdir()
    (d / "stale/batches.csv").write_text((d / "run/batches.csv").read_text())
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "stale")
    return one_line(o, 0) or grid_complete(d / "stale")


def _mix_two(d: Path) -> Path:
    (d / "two.toml").write_text('[[model]]\nname = "a"\nmodel = "tiny.onnx"\nrate = 50\nbatch = [1, 2]\n\n'
                                '[[model]]\nname = "b"\nmodel = "tiny.onnx"\nrate = 50\nbatch = 1\n')
    return d / "two.toml"


MIX = ["--workers", "cpu:1x1", "--scale", "1", "--batches", "4", "--warmup", "1"]


@case("torn", "a mix point cut after its first model's row, then `sweep --mix --resume`",
      "the point measured again, each model's row once")
def _(d):
    first = staronnx(d, "sweep", "--mix", _mix_two(d), *MIX, "-o", "m")
    text = (d / "m/points.csv").read_text()
    (d / "m/points.csv").write_text(text[: text.rstrip("\n").rfind("\n") + 20])
    again = staronnx(d, "sweep", "--mix", "two.toml", *MIX, "-o", "m", "--resume")
    import pandas as pd

    points = pd.read_csv(d / "m/points.csv")
    keys = sorted(zip(points.mix, points.model))
    expected = sorted((f"a={n} b=1", m) for n in (1, 2) for m in ("a", "b"))
    return one_line(first, 0) or one_line(again, 0) or (None if keys == expected else f"rows {keys}")


@case("outputs", "`trace` on a mix run of two batch-size combinations", "exit 2 naming --mix; with --mix, exit 0")
def _(d):
    first = staronnx(d, "sweep", "--mix", _mix_two(d), *MIX, "-o", "m")
    return one_line(first, 0) or one_line(staronnx(d, "trace", "m", "-o", "t.json"), 2, "give --mix") or \
        one_line(staronnx(d, "trace", "m", "--mix", "a=2 b=1", "-o", "t.json"), 0)


@case("outputs", "a run folder whose points.csv links to a file outside it, then `sweep --resume`",
      "exit 2, that file unchanged")
def _(d):
    (d / "precious.csv").write_text((d / "run/points.csv").read_text())
    (d / "run/points.csv").unlink()
    (d / "run/points.csv").symlink_to(d / "precious.csv")
    before = (d / "precious.csv").read_text()
    o = staronnx(d, "sweep", "tiny.onnx", "--workers", "cpu:1x1", "--batch", "1,2,4", "--rate", "50,100",
                 "--batches", "5", "--warmup", "1", "-o", "run", "--resume")
    return one_line(o, 2, "symbolic link") or (None if (d / "precious.csv").read_text() == before else "written")


# ---- outputs ----------------------------------------------------------------------------------------------------

@case("outputs", "`sweep -o` naming an existing file", "exit 2, file kept")
def _(d):
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "costs.csv"), 2, "is a file")


@case("outputs", "`zoo build tiny_cnn -o d/z.onnx` on a full disk (file size limit)",
      "exit 2 naming d/z.onnx, not the cache; no torn model left")
def _(d):
    o = staronnx(d, "zoo", "build", "tiny_cnn", "-o", "d/z.onnx", limit_file_bytes=20_000)
    return one_line(o, 2, "d/z.onnx", "ulimit") or (None if not (d / "d/z.onnx").exists() else "a torn model left")


@case("outputs", "`profile` on a full disk (file size limit)", "exit 2 naming the file size limit, not the model")
def _(d):
    o = staronnx(d, "profile", "tiny.onnx", "--runs", "2", "--warmup", "0", "-o", "c2.csv", limit_file_bytes=20_000)
    return one_line(o, 2, "ulimit -f") or (None if "cannot load" not in o.err else "blames the model")


def _sequence_model(path: Path) -> None:
    """A model whose input has a free sequence length besides the batch (as exported from Hugging Face)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    x, y = (helper.make_tensor_value_info(n, 1, ["batch", "seq", 64]) for n in ("x", "y"))
    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                                                [x], [y], [weight]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


@case("outputs", "`profile --shape x:16,64` with a cache that cannot be written (a file where it goes)",
      "exit 2, one line naming STARONNX_CACHE")
def _(d):
    _sequence_model(d / "seq.onnx")
    (d / "cachefile").write_text("not a folder")
    o = staronnx(d, "profile", "seq.onnx", "--shape", "x:16,64", "-o", "cs.csv",
                 env_extra={"STARONNX_CACHE": str(d / "cachefile")})
    return one_line(o, 2, "STARONNX_CACHE")


@case("outputs", "`profile --shape x:16,64` on a full disk while the copy is written, then again with room",
      "exit 2, one line; the copy made afresh and profiled the second time")
def _(d):
    _sequence_model(d / "seq.onnx")
    cache = {"STARONNX_CACHE": str(d / "shapecache")}
    o = staronnx(d, "profile", "seq.onnx", "--shape", "x:16,64", "-o", "cs.csv", limit_file_bytes=4_000,
                 env_extra=cache)
    said = one_line(o, 2)
    if said:
        return said
    if list((d / "shapecache").rglob("*.tmp")):
        return "a torn staging file left in the cache"
    again = staronnx(d, "profile", "seq.onnx", "--shape", "x:16,64", "--runs", "2", "--warmup", "0", "-o", "cs.csv",
                     env_extra=cache)
    return one_line(again, 0) or (None if "written to" in again.out and (d / "cs.csv").exists() else
                                  "a torn copy was reused")


@case("outputs", "`trace -o tiny.onnx` (an existing file that is not a trace)", "exit 2 naming --force, model kept")
def _(d):
    before = (d / "tiny.onnx").read_bytes()
    return one_line(staronnx(d, "trace", "run", "-o", "tiny.onnx"), 2, "not a trace", "--force") or (
        None if (d / "tiny.onnx").read_bytes() == before else "model overwritten")


@case("outputs", "`plot -o f.png`, f.png a link to the user's costs.csv", "exit 0, the link replaced, costs kept")
def _(d):
    before = (d / "costs.csv").read_text()
    (d / "f.png").symlink_to(d / "costs.csv")
    return one_line(staronnx(d, "plot", "run", "-o", "f.png"), 0) or (
        None if (d / "costs.csv").read_text() == before and not (d / "f.png").is_symlink() else "written through")


@case("outputs", "`trace -o loop` and `trace loop`, loop a cycle of symbolic links", "exit 2 each, one line")
def _(d):
    (d / "loop").symlink_to(d / "loop2")
    (d / "loop2").symlink_to(d / "loop")
    return one_line(staronnx(d, "trace", "run", "-o", "loop"), 2, "symbolic links") or \
        one_line(staronnx(d, "trace", "loop"), 2, "symbolic links")


for command, what in [(["trace", "run", "-o", "run/points.csv"], "`trace -o run/points.csv`"),
                      (["plot", "run", "-o", "run/run.json"], "`plot -o run/run.json`"),
                      (["report", "run", "-o", "run/batches.csv", "--force"], "`report -o run/batches.csv --force`")]:
    def _own(d, command=command):
        target = d / command[-1 if command[-1] != "--force" else -2]
        before = target.read_text()
        return one_line(staronnx(d, *command), 2, "run") or (None if target.read_text() == before else "overwritten")
    case("outputs", f"{what}: over a run's own file", "exit 2, the file unchanged")(_own)


def read_only(command: list[str]):
    """The case folder bind-mounted read-only: the command must say so in one line, exit 2."""
    def check(d):
        ro = d.parent / (d.name + "-ro")
        ro.mkdir()
        mounted = subprocess.run(["mount", "--bind", str(d), str(ro)], capture_output=True).returncode == 0 and \
            subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True).returncode == 0
        try:
            if not mounted:
                return "NOT RUN: no read-only bind mount here (needs root)"
            return one_line(staronnx(ro, *command), 2, "Read-only file system")
        finally:
            subprocess.run(["umount", str(ro)], capture_output=True)
    return check


for command in (["sweep", "tiny.onnx", *SWEEP, "-o", "new"], ["sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume"],
                ["split", "tiny.onnx", "--costs", "costs.csv", "-o", "p2"],
                ["profile", "tiny.onnx", "--batch", "1", "--runs", "2", "-o", "c2.csv"],
                ["plot", "run", "-o", "e.png"], ["report", "run", "-o", "r.md"], ["trace", "run", "-o", "t.json"],
                ["zoo", "build", "tiny_cnn", "-o", "z.onnx"]):
    case("outputs", f"`{' '.join(command[:2])} ... -o {command[command.index('-o') + 1]}` on a read-only file system",
         "exit 2, one line naming it", {"mount"})(read_only(command))


@case("outputs", "a full disk during a sweep (file size limit), then `--resume` with space",
      "exit 2 one line, whole rows only; resume completes the grid")
def _(d):
    size = (d / "run/batches.csv").stat().st_size
    shutil.rmtree(d / "run")
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", limit_file_bytes=size // 2)
    if (err := one_line(o, 2, "--resume")):
        return err
    if not all((d / "run" / f).read_text().endswith("\n") for f in ("points.csv", "batches.csv")
               if (d / "run" / f).exists()):
        return "a torn row left"
    again = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "-o", "run", "--resume")
    return one_line(again, 0) or grid_complete(d / "run")


# ---- interrupts -------------------------------------------------------------------------------------------------

def _interrupt(sig: signal.Signals, after_s: float):
    def check(d):
        shutil.rmtree(d / "run")
        grid = ["--workers", "cpu:1x1", "--batch", "1,2", "--rate", "5,10", "--batches", "20", "--warmup", "1"]
        proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", "tiny.onnx", *grid, "-o", "run"],
                                cwd=d, env=ENV, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=default_sigint)
        time.sleep(after_s)
        if proc.poll() is not None:
            return f"NOT RUN: the sweep ended before the signal (exit {proc.returncode})"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        if "Traceback" in err:
            return "traceback"
        if sig != signal.SIGKILL and len([x for x in err.splitlines() if x.strip()]) != 1:
            return f"stderr: {err[-200:]}"
        flags = ["--resume"] if (d / "run/run.json").exists() else []
        o = staronnx(d, "sweep", "tiny.onnx", *grid, "-o", "run", *flags)
        return one_line(o, 0) or grid_complete(d / "run", rates=(5.0, 10.0))
    return check


for sig, after in [(signal.SIGINT, 0.3), (signal.SIGINT, 4.0), (signal.SIGKILL, 4.0), (signal.SIGINT, 12.0),
                   (signal.SIGKILL, 15.0), (signal.SIGTERM, 6.0)]:
    case("interrupts", f"{sig.name} {after:g} s into a sweep, then the same sweep (--resume if run.json exists)",
         "one line (not SIGKILL), no traceback; the grid completed, each point once")(_interrupt(sig, after))


@case("interrupts", "Triton baseline sweep, then look for a tritonserver left running", "none left", {"triton"})
def _(d):
    o = staronnx(d, "sweep", "tiny.onnx", *SWEEP, "--system", "triton", "-o", "tr", timeout=300)
    if (err := one_line(o, 0)):
        return err
    return triton_left(d)


def triton_left(d: Path) -> str | None:
    left = subprocess.run(["pgrep", "-f", f"tritonserver.*{d.name}"], capture_output=True, text=True).stdout.split()
    return f"tritonserver still running: {left}" if left else None


def _triton_interrupted(sig: signal.Signals):
    def check(d):
        grid = ["--workers", "cpu:1x1", "--batch", "1", "--rate", "20,21,22,23", "--batches", "20", "--warmup", "0"]
        proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", str(d / "tiny.onnx"), "--system",
                                 "triton", *grid, "-o", str(d / "tr")], cwd=d, env=ENV, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_sigint)
        for _ in range(900):  # until the first point is written: the server is up
            if len(rows_of(d / "tr/points.csv")) >= 1:
                break
            time.sleep(0.1)
        else:
            proc.kill()
            return "no point within 90 s"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=90)
        return one_line(Outcome(proc.returncode, "", err, 0), 130, "--resume") or triton_left(d)
    return check


RAY_PLATFORM = ('[[workers]]\nkind = "cuda"\ncount = 1\n[[workers]]\nkind = "cpu"\ncount = 2\ncores = 1\n'
                + "".join(f'[[times]]\npart = 0\nkind = "{k}"\nbatch = {b}\nmean_ms = {ms}\n'
                          for k, b, ms in (("cuda", 1, 1.0), ("cuda", 8, 2.4), ("cpu:1", 1, 2.0), ("cpu:1", 8, 12.0))))


def ray_processes() -> set[int]:
    """Live Ray processes on this machine (zombies, already dead, are not counted)."""
    out = subprocess.run(["ps", "-eo", "pid,stat,comm"], capture_output=True, text=True).stdout.splitlines()[1:]
    return {int(pid) for pid, stat, comm in (line.split(None, 2) for line in out)
            if not stat.startswith("Z") and (comm.startswith(("raylet", "gcs_server")) or comm.startswith("ray::"))}


@case("ray", "`advise --ray-address` at a port where an HTTP server listens", "exit 2 at once, one line", {"ray"})
def _(d):
    (d / "p.toml").write_text(RAY_PLATFORM)
    server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"], cwd=d, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None  # stdout=PIPE
        line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 41234 (...)"
        port = line.split(" port ")[1].split()[0]
        o = staronnx(d, "advise", "tiny.onnx", "--rate", "300", "--platform", "p.toml", "--offload", "0", "--ray",
                     "--ray-address", f"127.0.0.1:{port}", "-o", "a", timeout=60)
    finally:
        server.kill()
    return one_line(o, 2, "not a Ray cluster") or (None if o.seconds < 15 else f"took {o.seconds:.0f} s")


def _ray_interrupted(sig: signal.Signals):
    def check(d):
        (d / "p.toml").write_text(RAY_PLATFORM)
        before = ray_processes()
        args = ["advise", "tiny.onnx", "--rate", "100,200,300,400,500,600,700,800", "--batch", "1,2,4,8",
                "--platform", "p.toml", "--offload", "0", "--ray", "--batches", "3000", "-o", "a"]
        proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", *args], cwd=d, env=ENV, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_sigint)
        for _ in range(1200):  # until the cluster simulates: its first candidates' run directories
            if (d / "a/sim").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        sent = time.perf_counter()
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "still running 30 s after the signal"
        took = time.perf_counter() - sent
        time.sleep(2.0)
        left = ray_processes() - before
        return (one_line(Outcome(proc.returncode, "", err, took), 130, "interrupted")
                or (f"exit {took:.1f} s after the signal" if took > 1.0 else None)
                or (f"Ray processes left: {sorted(left)}" if left else None))
    return check


for sig in (signal.SIGINT, signal.SIGTERM):
    case("ray", f"{sig.name} during `advise --ray` (a local Ray cluster simulating)",
         "exit 130 within a second, one line, no Ray process left", {"ray"})(_ray_interrupted(sig))


for sig in (signal.SIGINT, signal.SIGTERM):
    case("interrupts", f"{sig.name} during a Triton baseline sweep", "exit 130, one line; no tritonserver left",
         {"triton"})(_triton_interrupted(sig))


# ---- found by the fifth and sixth rounds of hostile inputs (2026-12-07) ------------------------------------------

def _onnx(path: Path, shape: list, outputs_x: bool = False) -> None:
    """x -> Relu -> y, x of `shape`; `outputs_x`: x is a model output too."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)] + ([x] if outputs_x else [])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


@case("inputs", "a model with an input dimension of size -1", "exit 2, one line naming it")
def _(d):
    _onnx(d / "neg.onnx", ["N", -1])
    return one_line(staronnx(d, "sweep", "neg.onnx", *SWEEP, "-o", "out"), 2, "size -1")


@case("models", "a model whose output is also its input (outputs [y, x])", "exit 0, its points measured")
def _(d):
    _onnx(d / "pass.onnx", ["N", 4], outputs_x=True)
    o = staronnx(d, "sweep", "pass.onnx", *SWEEP, "-o", "out")
    return one_line(o, 0) or grid_complete(d / "out")


@case("inputs", "an arrival trace with two numbers per line", "exit 2, one line naming it")
def _(d):
    (d / "t.txt").write_text("0 1\n2 3\n4 5\n")
    return one_line(staronnx(d, "sweep", "tiny.onnx", *SWEEP, "--arrival", "trace:t.txt", "-o", "out"), 2,
                    "2 numbers per line")


@case("outputs", "`profile -o newdir/` (a folder to be made)", "exit 2, one line; no file named newdir")
def _(d):
    o = staronnx(d, "profile", "tiny.onnx", "--runs", "2", "-o", "newdir/")
    return one_line(o, 2, "names a directory") or ("a file named newdir" if (d / "newdir").exists() else None)


@case("plans", "plan.json with its parts listed in reverse order", "exit 2, one line naming the order")
def _(d):
    import json

    path = d / "plan/plan.json"
    plan = json.loads(path.read_text())
    plan["parts"] = plan["parts"][::-1]
    path.write_text(json.dumps(plan))
    return one_line(staronnx(d, "sweep", "plan", *SWEEP, "-o", "out"), 2, "part i at index i")


@case("numbers", "costs.csv with every time 0, then `split`", "exit 2, one line: no time to split by")
def _(d):
    import pandas as pd

    costs = pd.read_csv(d / "costs.csv")
    costs[["mean_us", "median_us", "std_us", "host_us"]] = 0.0
    costs.to_csv(d / "zero.csv", index=False)
    return one_line(staronnx(d, "split", "tiny.onnx", "--costs", "zero.csv", "-o", "p0"), 2, "no time to split by")


@case("resume", "`--resume` of a native-core run with STARONNX_HOT_PATH=python", "exit 2, one line; no row added")
def _(d):
    import json

    if json.loads((d / "run/run.json").read_text()).get("hot_path") != "native core":
        return "NOT RUN: the native core is not built here"
    before = rows_of(d / "run/points.csv")
    proc = subprocess.run([sys.executable, "-m", "staronnx_cli", "sweep", "tiny.onnx", *SWEEP, "-o", "run",
                           "--resume"], cwd=d, env={**ENV, "STARONNX_HOT_PATH": "python"}, text=True,
                          capture_output=True, timeout=120)
    o = Outcome(proc.returncode, proc.stdout, proc.stderr, 0.0)
    return one_line(o, 2, "measured on the native core") or (None if rows_of(d / "run/points.csv") == before
                                                              else "rows added")


@case("reads", "`platform from-run`, `trace` and `plot --kind timeline` of a run with batches never started",
      "exit 0 each")
def _(d):
    o = staronnx(d, "sweep", "tiny.onnx", "--workers", "cpu:1x1", "--batch", "1", "--rate", "50,100000", "--batches",
                 "20", "--warmup", "2", "-o", "jam")
    return (one_line(o, 0) or one_line(staronnx(d, "platform", "from-run", "jam", "-o", "p.toml"), 0)
            or one_line(staronnx(d, "trace", "jam", "-o", "t.json"), 0)
            or one_line(staronnx(d, "plot", "jam", "--kind", "timeline", "-o", "t.png"), 0))


@case("interrupts", "two SIGTERMs 50 ms apart during a sweep (a scheduler's time limit)",
      "exit 130, one line; what was finished kept")
def _(d):
    grid = ["--workers", "cpu:1x1", "--batch", "1", "--rate", "50,100,150", "--batches", "400", "--warmup", "1"]
    shutil.rmtree(d / "run")
    proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", "tiny.onnx", *grid, "-o", "run"], cwd=d,
                            env=ENV, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)
    for _ in range(1200):  # until its first point is written
        if (d / "run/points.csv").exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return one_line(Outcome(proc.returncode, "", err, 0.0), 130, "interrupted") or \
        (None if len(rows_of(d / "run/points.csv")) >= 1 else "the finished point lost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/faults.md"))
    parser.add_argument("--only", default="", help="run the cases whose text holds this")
    parser.add_argument("--skip", default="", help="comma-separated needs to skip: triton, mount, ray")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    root = Path(tempfile.mkdtemp(prefix="staronnx-faults-"))
    base = root / "base"
    base.mkdir()
    fixtures(base)
    lines = ["| # | group | tried | expected | result |", "|---|---|---|---|---|"]
    passed = failed = not_run = 0
    for i, c in enumerate(CASES, 1):
        if args.only and args.only not in c.tried:
            continue
        if c.needs & skip:
            result = f"NOT RUN (--skip {','.join(c.needs & skip)})"
        else:
            work = root / f"case{i}"
            shutil.copytree(base, work)
            try:
                problem = c.run(work)
            except Exception as exc:  # noqa: BLE001 - a broken case is reported, the others still run
                problem = f"harness error: {type(exc).__name__}: {exc}"
            result = "pass" if problem is None else ("NOT RUN: " + problem[9:] if problem.startswith("NOT RUN")
                                                      else f"FAIL: {problem}")
        passed += result == "pass"
        not_run += result.startswith("NOT RUN")
        failed += result.startswith("FAIL")
        row = f"| {i} | {c.group} | {c.tried} | {c.expected} | {result.replace('|', '/')} |"
        print(row, flush=True)
        lines.append(row)
    summary = f"\n{passed} passed, {failed} failed, {not_run} not run, of {passed + failed + not_run} cases.\n"
    print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n" + summary)
    shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
