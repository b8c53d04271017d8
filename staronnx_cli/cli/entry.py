"""The `staronnx` executable: the app is imported inside `main`, so a Ctrl-C while ONNX Runtime and the rest load
(a second or two) is one line, like a Ctrl-C later, not a traceback. A SIGTERM (`kill`, a job scheduler's time
limit) is handled as a Ctrl-C: the same cleanup (a Triton server stopped, workers joined) and the same one line."""

from __future__ import annotations

import signal
import sys


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from .app import app

        app()
    except KeyboardInterrupt:  # the commands handle their own; this is the start-up before them
        sys.stderr.write("error: interrupted while starting; nothing was written\n")
        sys.exit(130)
    except SystemExit as exc:  # typer turns a Ctrl-C while it parses the options into a silent exit 130
        if exc.code == 130 and not _told():
            sys.stderr.write("error: interrupted while starting; nothing was written\n")
        raise


def _told() -> bool:
    common = sys.modules.get("staronnx_cli.cli.common")
    return bool(common and common.told)
