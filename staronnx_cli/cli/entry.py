"""The `staronnx` executable: the app is imported inside `main`, so a Ctrl-C while ONNX Runtime and the rest load
(a second or two) is one line, like a Ctrl-C later, not a traceback. A SIGTERM (`kill`, a job scheduler's time
limit) is handled as a Ctrl-C: the same cleanup (a Triton server stopped, workers joined) and the same one line; a
second one while that cleanup runs is ignored, a third ends the process at once."""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import NoReturn

_received: list[int] = []  # the Ctrl-Cs and SIGTERMs of this invocation


def _interrupt(signum, frame):
    """The first Ctrl-C or SIGTERM interrupts (the command cleans up, keeps what it measured and says one line);
    a second one is ignored, so that it cannot cut that cleanup or that line short (exit 130 and nothing said);
    a third ends the process at once, for a cleanup that hangs."""
    _received.append(signum)
    if len(_received) == 1:
        raise KeyboardInterrupt
    if len(_received) >= 3:
        _flush()
        os._exit(130)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass


def main() -> None:
    _received.clear()
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where a shell started it ignoring Ctrl-C
        signal.signal(signal.SIGINT, _interrupt)
    atexit.register(_ignore_signals)  # registered first, run last: after every other exit handler
    common = sys.modules.get("staronnx_cli.cli.common")
    if common is not None:  # said by this invocation only (a process running main twice: the tests)
        setattr(common, "told", False)  # noqa: B010 - a module from sys.modules: mypy knows no attribute
    _quiet_libraries()
    undecodable = _undecodable(sys.argv[1:])
    if undecodable:
        sys.stderr.write(f"error: {undecodable}\n")
        sys.exit(2)
    try:
        from .app import app

        try:
            code = app(standalone_mode=False)  # a usage error comes back to be said in one line
        except Exception as exc:  # Click's own (Typer may vendor Click: its classes are told by their members)
            _click_error(exc)
            raise
        _exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:  # the commands handle their own; this is the start-up before them, or a second
        if not _told():  # Ctrl-C after the command said its line
            sys.stderr.write("error: interrupted while starting; nothing was written\n")
        _exit(130)
    except SystemExit as exc:  # typer turns a Ctrl-C while it parses the options into a silent exit 130
        if exc.code == 130 and not _told():
            sys.stderr.write("error: interrupted while starting; nothing was written\n")
        raise


def _exit(code: int) -> NoReturn:
    """The command has ended, what it measured written and its line said. A Ctrl-C or SIGTERM while the interpreter
    shuts down (exit handlers, ONNX Runtime's thread pools: a fraction of a second) is ignored, so that the exit
    code stays the command's instead of the signal's (143) and every exit handler runs; a second one ends it at
    once, with the same code."""
    received: list[int] = []

    def on_signal(signum, frame):
        if not received:
            received.append(signum)
            return
        _flush()
        os._exit(code)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    sys.exit(code)


def _ignore_signals() -> None:
    """The last exit handler: Python then resets its signal handlers to the default, and a Ctrl-C or SIGTERM in
    what remains (ONNX Runtime's thread pools torn down, milliseconds) would kill it by the signal; ignored, the
    exit code stays the command's."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _quiet_libraries() -> None:
    """Lines staronnx's libraries print on their own where HOME cannot be written (a container, a batch job, a
    read-only home): ONNX Runtime's 'Failed to persist telemetry device ID' (in colour, when it is imported, before
    its log level can be set) and Matplotlib's 'mkdir -p failed' and 'created a temporary cache directory'. They
    broke the one line of every error and NO_COLOR."""
    import logging

    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    logging.getLogger("matplotlib").setLevel(logging.ERROR)


def _undecodable(args: list[str]) -> str:
    """A path that is not UTF-8 (a file named in another encoding) cannot be handed to ONNX Runtime nor recorded in
    run.json and plan.json: say so before anything runs, not as an error deep inside a command."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return (f"'{shown}' is not valid UTF-8: staronnx records its arguments in UTF-8 files; give it in UTF-8 "
                    "(a file: rename it, e.g. with convmv, or copy it to a UTF-8 name)")
    return ""


def _click_error(exc: Exception) -> None:
    """A usage error (a value of the wrong type, an unknown option or command) as one line naming the command
    whose --help says more, not Click's box: "Invalid value for '--batches': 'abc' is not a valid integer
    (staronnx sweep --help)"; a Ctrl-C while Click parses (its Abort) as one; anything else returns."""
    kind = type(exc).__name__
    if kind == "Abort":
        raise KeyboardInterrupt from None
    if kind == "NoArgsIsHelpError":  # `staronnx` alone: the help, and Click's exit code for it (2)
        exc.show()  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    if not (hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)):
        return
    ctx = getattr(exc, "ctx", None)
    command = f" ({ctx.command_path} --help)" if ctx is not None else ""
    sys.stderr.write(f"error: {exc.format_message().rstrip('.')}{command}\n")
    sys.exit(exc.exit_code)  # type: ignore[attr-defined]


def _told() -> bool:
    common = sys.modules.get("staronnx_cli.cli.common")
    return bool(common and common.told)
