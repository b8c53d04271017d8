"""An earlier advice's own runs in its -o: what `advise --force` replaces. Only what advise wrote is touched (a
run whose run.json names an advise command, a fleet of advise's confirmations, its numbered platform files),
never a run of the user's beside them, and only once the new advice is written."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

FOLDERS = ("sim", "headroom", "real")  # where advise writes its runs
CONFIRMATIONS = "advise confirmations"  # the campaign name of the confirmations run on a Ray cluster
FLEET_STATE = "fleet.json"  # fleet.run.STATE (fleet sits above advise's layer)


@dataclass
class EarlierRuns:
    """What advise had written in -o before this run: each path with its file's identity (inode, mtime), so that
    what this run rewrote (an atomic rename: a new inode) is told apart from what it left."""

    seen: dict[Path, tuple[int, int]]

    @classmethod
    def of(cls, out: Path) -> EarlierRuns:
        return cls({path: _identity(path) for path in own_files(out)})

    def drop_unreplaced(self) -> list[Path]:
        """Removes the runs and files this run did not write again; returns them."""
        dropped = [p for p, was in self.seen.items() if p.exists() and _identity(p) == was]
        for path in dropped:
            if path.name == "run.json":
                shutil.rmtree(path.parent, ignore_errors=True)
                _drop_if_empty(path.parent.parent)
            else:
                path.unlink(missing_ok=True)
        return dropped


def own_files(out: Path) -> list[Path]:
    """advise's own: the run.json of each run it wrote (locally or as a fleet job), the fleet's own files, and
    its numbered platform files."""
    runs = [p for folder in FOLDERS for p in sorted((out / folder).glob("*/run.json")) if _by_advise(p)]
    jobs = confirmation_jobs(out / "real")
    if jobs is not None:
        runs += [out / "real" / key / "run.json" for key in jobs]
        runs += [p for p in (out / "real" / FLEET_STATE, out / "real" / "campaign.toml") if p.exists()]
    return runs + [p for p in sorted((out / "platforms").glob("*.toml")) if p.stem.isdigit()]


def confirmation_jobs(folder: Path) -> list[str] | None:
    """The jobs of a fleet of advise's confirmations in `folder`; None when it holds no such fleet."""
    try:
        state = json.loads((folder / FLEET_STATE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("name") != CONFIRMATIONS:
        return None
    jobs = state.get("jobs")
    if not isinstance(jobs, dict):
        return []
    return [key for key in jobs if isinstance(key, str) and key and ".." not in Path(key).parts
            and not Path(key).is_absolute()]


def forget_confirmations(folder: Path) -> None:
    """An earlier advise's fleet of confirmations in `folder` is measured again, not continued: a fleet reruns
    only what is not done, and refuses a job whose settings changed."""
    jobs = confirmation_jobs(folder)
    if jobs is None:
        return
    for key in jobs:
        shutil.rmtree(folder / key, ignore_errors=True)
        _drop_if_empty((folder / key).parent)
    (folder / FLEET_STATE).unlink(missing_ok=True)


def _by_advise(run_json: Path) -> bool:
    try:
        meta = json.loads(run_json.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and str(meta.get("command", "")).startswith("staronnx advise")


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _drop_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
