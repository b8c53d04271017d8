"""An earlier advice's own runs in its -o: what `advise --force` replaces. Only what advise wrote is touched (a
run whose run.json names an advise command, a fleet of advise's confirmations, the layout platform files it
marked as its own), never a run of the user's beside them nor the --platform file the new advice reads, and only
once the new advice is written."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

FOLDERS = ("sim", "headroom", "real")  # where advise writes its runs
LAYOUT_MARK = "# a worker layout staronnx advise searched"  # the first line of each platforms/N.toml it writes
REPLACED = ".replaced"  # real/.replaced: an earlier advise's confirmations on a cluster, kept until this one is done
CONFIRMATIONS = "advise confirmations"  # the campaign name of the confirmations run on a Ray cluster
FLEET_STATE = "fleet.json"  # fleet.run.STATE (fleet sits above advise's layer)


@dataclass
class EarlierRuns:
    """What advise had written in -o before this run: each path with its file's identity (inode, mtime), so that
    what this run rewrote (an atomic rename: a new inode) is told apart from what it left."""

    seen: dict[Path, tuple[int, int]]

    @classmethod
    def of(cls, out: Path, keep: Path | None = None) -> EarlierRuns:
        """`keep`: a file this advise reads (its --platform), never dropped even where an earlier advise wrote it."""
        kept = keep.resolve() if keep is not None else None
        return cls({path: _identity(path) for path in own_files(out) if path.resolve() != kept})

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
    """advise's own, those that exist: the run.json of each run it wrote (locally or as a fleet job), the fleet's
    own files, and the layout platform files it marked."""
    runs = [p for folder in FOLDERS for p in sorted((out / folder).glob("*/run.json")) if _by_advise(p)]
    jobs = confirmation_jobs(out / "real")
    if jobs is not None:
        runs += [out / "real" / key / "run.json" for key in jobs]
        runs += [out / "real" / FLEET_STATE, out / "real" / "campaign.toml"]
    runs += [p for p in sorted((out / "platforms").glob("*.toml")) if _marked(p)]
    return [p for p in runs if p.is_file()]  # a queued job of a fleet that stopped early wrote none


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
    return [key for key in jobs if isinstance(key, str) and _inside(key)]


def set_aside_confirmations(folder: Path) -> None:
    """An earlier advise's fleet of confirmations in `folder` is measured again, not continued (a fleet reruns
    only what is not done, and refuses a job whose settings changed): its state and jobs move to .replaced, where
    they stay until the new advice is written (`drop_set_aside`), so a confirmation that fails loses nothing."""
    jobs = confirmation_jobs(folder)
    if jobs is None:
        return
    aside = folder / REPLACED
    shutil.rmtree(aside, ignore_errors=True)  # an older generation's, left by a failed advise
    for key in [*jobs, FLEET_STATE, "campaign.toml"]:
        if (folder / key).exists():
            (aside / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).rename(aside / key)
            _drop_if_empty((folder / key).parent)


def drop_set_aside(out: Path) -> None:
    shutil.rmtree(out / "real" / REPLACED, ignore_errors=True)


def mark_layout(text: str) -> str:
    """A platform file's text as advise writes it for a layout it searched (so a later --force knows it)."""
    return f"{LAYOUT_MARK}\n{text}"


def _marked(path: Path) -> bool:
    try:
        with path.open() as f:
            return f.readline().rstrip("\n") == LAYOUT_MARK
    except (OSError, UnicodeDecodeError):
        return False


def _inside(key: str) -> bool:
    """A job key names a folder inside the fleet's (no '.', '..' or absolute path)."""
    parts = Path(key).parts
    return bool(parts) and not Path(key).is_absolute() and all(p not in (".", "..") for p in parts)


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
