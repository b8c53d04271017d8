"""Where staronnx keeps what it can rebuild: zoo models (zoo/) and performance models (perfmodels/)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$STARONNX_CACHE, else $XDG_CACHE_HOME/staronnx, else ~/.cache/staronnx."""
    if os.environ.get("STARONNX_CACHE"):  # '~/x' quoted in an env file or a unit: no shell expanded it
        return Path(os.environ["STARONNX_CACHE"]).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores a relative path
    return base / "staronnx"
