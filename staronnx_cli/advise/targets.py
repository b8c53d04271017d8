"""The targets `advise` compares: the whole model, its splits at each offload fraction and its branch plans, made
with `split` on a CPU profile of the model. Profile and plans are cached by model (and costs) sha256, so a second
advice reuses them instead of profiling and splitting again."""

from __future__ import annotations

import json
import platform as host
from pathlib import Path

from .. import modelio
from ..cachedir import cache_dir
from ..inputdata import RANDOM, InputData
from ..zoo.names import typed_name
from .space import Target


def _cache(model_sha: str) -> Path:
    import onnxruntime as ort

    return cache_dir() / "advise" / f"{host.node() or 'host'}-{model_sha[:16]}-ort{ort.__version__}"


def profiled_costs(model: Path, model_sha: str, on_step=lambda text: None, data: InputData = RANDOM
                   ) -> tuple[Path, float]:
    """A CPU profile of the model at batch 1 (cached, per input data), and its end-to-end time per run (seconds)."""
    import json

    from ..devices import parse_device
    from ..profile.profiler import ProfileSettings, profile_model, write_profile

    path = _cache(model_sha) / ("costs.csv" if data == RANDOM else f"costs-{_data_key(data)}.csv")
    meta = path.with_name(f"{path.stem}.advise.json")  # costs.advise.json beside costs.csv
    if path.exists() and meta.exists():
        try:
            return path, float(json.loads(meta.read_text())["end_to_end_s"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a torn cache entry (a crash while writing it): profiled again below
    on_step(f"profiling {typed_name(model)} on the CPU (10 runs at batch 1) for its splits")
    device = parse_device("cpu")
    profiled = ProfileSettings(model, device, [1], runs=10, warmup=2, overhead=False, input_data=data)
    result = profile_model(profiled)
    write_profile(path, profiled, result)
    batch = result.batches[0]
    meta.write_text(json.dumps({"end_to_end_s": batch.end_to_end_us / 1e6}) + "\n")
    return path, batch.end_to_end_us / 1e6


def _made(plan: Path) -> bool:
    """A cached plan to search: made, and not one kept after failing its verification (split keeps such a plan for
    the user to look at; a sweep refuses it): that one is split again (and fails again, said as a note)."""
    try:
        return json.loads((plan / "plan.json").read_text()).get("verification", {}).get("passed") is not False
    except (OSError, ValueError, AttributeError):
        return False


def _data_key(data: InputData) -> str:
    """zeros, or a samples file's sha256 head: the profile (and the plans cut on it) of the model on those inputs."""
    return modelio.sha256_of(Path(data.source))[:16] if data.is_file else data.source


def make_targets(model: Path, offloads: tuple[float, ...], parts: tuple[int, ...] = (2,),
                 on_step=lambda text: None, streams: tuple[int, ...] = (), data: InputData = RANDOM
                 ) -> tuple[list[Target], float, list[str]]:
    """The whole model, one plan per (number of parts, offload fraction) and one branch plan per count of streams,
    made now or found in the cache; the model's end-to-end time per run at batch 1 on all cores, which calibration
    estimates start from; and a note for each plan that could not be made (the others are searched without it)."""
    from ..errors import UserError
    from ..split.splitter import SplitSettings, run_split

    model_sha = modelio.sha256_of(model)
    costs, end_to_end_s = profiled_costs(model, model_sha, on_step, data)
    targets, notes = [Target("whole", str(model))], []
    costs_sha = modelio.sha256_of(costs)[:12]
    for count in dict.fromkeys(parts):
        for fraction in dict.fromkeys(offloads):
            percent = f"{100 * fraction:g}".replace(".", "_")  # 0.124 -> 12_4: two fractions never share a plan
            plan = _cache(model_sha) / f"plan-{costs_sha}-f{percent}-p{count}"
            if not _made(plan):
                on_step(f"splitting {typed_name(model)} in {count} parts: {fraction:.0%} of its CPU time to the later "
                        "ones")
                try:
                    run_split(SplitSettings(model, plan, costs=costs, offload=fraction, parts=count, force=True,
                                            input_data=data))
                except UserError as exc:
                    notes.append(f"no {count}-part split at {fraction:.0%}: {exc}; searched without it")
                    continue
            key = f"split{percent}" + ("" if count == 2 else f"p{count}")  # split10, split10p3
            targets.append(Target(key, str(plan), count, fraction))
    for k in dict.fromkeys(streams):
        plan = _cache(model_sha) / f"plan-{costs_sha}-b{k}"
        if not _made(plan):
            on_step(f"cutting {typed_name(model)} into a branch plan of {k} streams")
            try:
                run_split(SplitSettings(model, plan, costs=costs, method="branches", streams=k, force=True,
                                        input_data=data))
            except UserError as exc:  # its fix names split's options: said as a split of one's own
                fix = "" if "--min-part-us" not in str(exc) else \
                    f" (to try one anyway: staronnx split {typed_name(model)} --method branches --streams {k} with a " \
                    "lower --min-part-us, then advise that plan with a platform captured from a sweep of it)"
                why = str(exc).split(": lower --min-part-us")[0]
                notes.append(f"no branch plan in {k} streams: {why}; searched without it{fix}")
                continue
        count = len(json.loads((plan / "plan.json").read_text())["parts"])
        targets.append(Target(f"branches{k}", str(plan), count, 0.0, k))
    return targets, end_to_end_s, notes
