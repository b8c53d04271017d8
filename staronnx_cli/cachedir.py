"""Where staronnx keeps what it can rebuild: zoo models (zoo/) and performance models (perfmodels/)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$STARONNX_CACHE, else $XDG_CACHE_HOME/staronnx, else ~/.cache/staronnx."""
    if os.environ.get("STARONNX_CACHE"):
        return Path(os.environ["STARONNX_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "staronnx"
