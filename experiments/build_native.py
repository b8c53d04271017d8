"""Build the runtime's native pieces (staronnx_cli/runtime/_hotpath.c, the waits; _core.c, the native core) in place
with the C compiler, for the current interpreter, without setuptools or pip: for a machine where the project is used
from its checkout (an offline GPU machine whose kit puts the project on PYTHONPATH), where `pip install` never built
them. `make gpu-check` runs it.
Usage: python experiments/build_native.py   (exit 0 built or already there; 1 with one line saying why not)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "staronnx_cli" / "runtime" / "_hotpath.c", ROOT / "staronnx_cli" / "runtime" / "_core.c"]


def build() -> str:
    """'' when the modules are importable now, else why not."""
    for source in SOURCES:
        why = build_one(source)
        if why:
            return f"{source.name}: {why}"
    return ""


def build_one(source: Path) -> str:
    target = source.with_name(source.stem + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    if target.exists():
        return ""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return "no C compiler (cc, gcc or clang) on PATH"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        return f"no Python.h in {include} (install the Python development headers)"
    done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target),
                           "-ldl", "-lpthread"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"{compiler} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return ""


if __name__ == "__main__":
    why = build()
    print(f"native hot path: {'built or present' if not why else 'not built: ' + why}")
    sys.exit(1 if why else 0)
