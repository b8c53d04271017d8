"""What every command shares: consoles, the one-line error contract, list parsing."""

from __future__ import annotations

import errno
import functools
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import UserError, first_line
from ..inputfile import DANGLING, dangling

told = False  # whether a command printed its one line (the entry point says one itself when none did)
NO_ANSWER = 3  # exit code: the command ran and wrote its files, but found no (measured) answer: a sweep without an
# uncongested point, an advise whose answer at some rate this machine did not deliver


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        """stdout's reader went away (`staronnx sweep ... | head -1`, a pager quit): what is left to print goes
        nowhere and the command goes on to its end and its exit code (its files are what it makes). Rich's own
        exits 1 at once, saying nothing: a sweep stopped after the point being printed, as a bug would."""
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


console = _StdoutConsole(emoji=False, soft_wrap=True)  # ":100:" in "--rate 10:100:10" is a rate range, not an emoji;
# lines are never wrapped mid-phrase (a path or a figure cut in two): the terminal wraps them, a log keeps them whole
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def fail(message: str, code: int = 2):
    global told
    told = True
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)  # messages may hold [brackets]
    raise typer.Exit(code)


def handle_errors(command):
    """UserError -> one line, exit 2; any other failure -> one line, exit 1 (traceback with STARONNX_DEBUG=1)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with deferred_interrupts():
                load_numerical_stack()
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except UserError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; files already written are kept", 130)
        except OSError as exc:
            if exc.errno not in STORAGE_FIXES or os.environ.get("STARONNX_DEBUG"):
                raise_internal(exc)
            message = storage_message(exc)
            fail(message + (" (continue with --resume)" if command.__name__ == "sweep" and message.endswith(_AGAIN)
                            else ""))
        except Exception as exc:  # noqa: BLE001 - the CLI boundary
            raise_internal(exc)

    return wrapper


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C (or SIGTERM) is held while C extensions load and raised once they have: an interrupt inside
    numpy's import, as ONNX Runtime imports it, makes the extension print a traceback and fail with ImportError;
    one inside protobuf's or pandas' initialisation crashed the interpreter later (SIGSEGV)."""
    received: list[int] = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if received:  # told to the handler held back (the executable's counts them: a second is ignored)
            handler = handlers[signal.Signals(received[0])]
            if callable(handler) and handler is not signal.default_int_handler:
                handler(received[0], None)
            raise KeyboardInterrupt


def load_numerical_stack() -> None:
    """The C extensions every command but --help needs (--help stays quick without them): an interrupt while one
    initialises can leave it half-made (a traceback printed from C, or a crash later)."""
    import numpy  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import pandas  # noqa: F401


def raise_internal(exc: BaseException):
    if os.environ.get("STARONNX_DEBUG"):
        raise exc
    fail(f"internal error: {type(exc).__name__}: {first_line(exc)} "
         "(rerun with STARONNX_DEBUG=1 for the traceback and report it)", 1)


_AGAIN = "files already written are kept"  # a sweep adds how it continues (handle_errors)
STORAGE_FIXES = {  # the file system said no: the user's to fix, not a bug of ours
    errno.EROFS: "write elsewhere with -o; " + _AGAIN,
    errno.EACCES: "write elsewhere with -o or fix the permissions; " + _AGAIN,
    errno.EPERM: "write elsewhere with -o or fix the permissions; " + _AGAIN,
    errno.ENOSPC: "free some space and run again; " + _AGAIN,
    errno.EDQUOT: "free some space and run again; " + _AGAIN,
    errno.EFBIG: "the file size limit (ulimit -f) was reached: raise it and run again; " + _AGAIN,
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another -o",
    errno.EISDIR: "the path is a folder, not a file: choose another -o",
    errno.EEXIST: "a file is where a folder was to be made: choose another -o",
    errno.ENAMETOOLONG: "a name in the path is longer than the file system allows (255 bytes): choose a shorter -o",
    errno.ELOOP: "the path goes round in symbolic links: choose another -o",
    errno.EMFILE: "too many files open for this process (ulimit -n): raise the limit and run again; " + _AGAIN,
    errno.ENFILE: "too many files open on this machine: close some programs and run again; " + _AGAIN,
    errno.ENOENT: "it, or a folder on its path, does not exist and cannot be made there (or was removed while "
                  "staronnx ran): check the path, or choose another -o; " + _AGAIN,
}


def storage_message(exc: OSError) -> str:
    """'Read-only file system: 'r_files': write elsewhere with -o; ...' - the file, the reason, the fix. A path
    inside staronnx's cache is the cache's problem, not -o's."""
    from ..cachedir import cache_dir

    name = str(exc.filename or "")
    where = f" '{name[:120]}...'" if len(name) > 120 else f" '{name}'" if name else ""
    fix = STORAGE_FIXES.get(exc.errno or 0, "choose another -o")
    if exc.errno == errno.EEXIST and name and dangling(Path(name)):  # mkdir over a link to nowhere
        fix = f"it is a symbolic link that {DANGLING}: choose another -o"
    cache = str(cache_dir())
    if name and (name == cache or name.startswith(cache.rstrip("/") + "/")):
        how = ("set STARONNX_CACHE to a folder you can write, or unset it for ~/.cache/staronnx"
               if os.environ.get("STARONNX_CACHE") else "set STARONNX_CACHE to a folder you can write")
        fix = f"staronnx's cache ({cache}) cannot be used: {how}; {_AGAIN}"
    return f"{exc.strerror or errno.errorcode.get(exc.errno or 0, 'I/O error')}{':' + where if where else ''}: {fix}"


def resolve_model(model: str, shape: list[str] | None = None):
    """A path, or a zoo name built on first use (said on the console); with --shape, the copy with those sizes."""
    from ..shapes import shaped_model
    from ..zoo.names import resolve_model as resolve

    def say(text: str) -> None:
        console.print(text, soft_wrap=True)

    return shaped_model(resolve(model, say), shape or [], say)


SHAPE_HELP = ("INPUT:SIZES, an input's sizes after the batch, as perf_analyzer's --shape (a sequence length: "
              "--shape input_ids:128); repeat it per input. The model with them is kept in the cache.")


INPUT_DATA_HELP = ("What the model is fed, as perf_analyzer's --input-data: random (seeded), zeros, or a file of "
                   "samples: .npz (an array per input, samples first) or perf_analyzer's JSON.")


def parse_int_list(text: str, option: str, example: str = "1,8") -> list[int]:
    """'1,8' -> [1, 8]; anything else is a UserError naming the option (and an `example` it takes)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} '{text}' is not a list of integers: write e.g. {option} {example}") from None
    if not values:
        raise UserError(f"{option} is empty: write e.g. {option} {example}")
    return list(dict.fromkeys(values))  # 1,1,2 -> 1,2: a point is measured once


def refuse_measured_file(output: Path) -> None:
    """-o naming a run's or a plan's own file (run.json, points.csv, plan.json, part_0.onnx, ...): never replaced by
    another command, --force or not (zoo build -o RUN/run.json --force wrote a model over a run's metadata)."""
    from ..results.schema import RUN_FILES
    from ..split.plan import PLAN_FILES

    folder = output.parent
    if output.name in RUN_FILES and (folder / "run.json").is_file():
        raise UserError(f"-o {output} is the {output.name} of the run '{folder}': write elsewhere")
    if PLAN_FILES.match(output.name) and (folder / "plan.json").is_file():
        raise UserError(f"-o {output} is the {output.name} of the plan '{folder}': write elsewhere")
