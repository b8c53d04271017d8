"""The `staronnx` executable: the app is imported inside `main`, so a Ctrl-C while ONNX Runtime and the rest load
(a second or two) is one line, like a Ctrl-C later, not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .app import app

        app()
    except KeyboardInterrupt:  # the commands handle their own; this is the start-up before them
        sys.stderr.write("error: interrupted while starting; nothing was written\n")
        sys.exit(130)
