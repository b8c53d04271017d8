"""What every command shares: consoles, the one-line error contract, list parsing."""

from __future__ import annotations

import functools
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import UserError, first_line

console = Console(emoji=False)  # ":100:" in "--rate 10:100:10" is a rate range, not an emoji
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def fail(message: str, code: int = 2):
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)  # messages may hold [brackets]
    raise typer.Exit(code)


def handle_errors(command):
    """UserError -> one line, exit 2; any other failure -> one line, exit 1 (traceback with STARONNX_DEBUG=1)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except UserError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; files already written are kept", 130)
        except Exception as exc:  # noqa: BLE001 - the CLI boundary
            if os.environ.get("STARONNX_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {first_line(exc)} "
                 "(rerun with STARONNX_DEBUG=1 for the traceback and report it)", 1)

    return wrapper


def parse_int_list(text: str, option: str) -> list[int]:
    """'1,8' -> [1, 8]; anything else is a UserError naming the option."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} '{text}' is not a list of integers: write e.g. {option} 1,8") from None
    if not values:
        raise UserError(f"{option} is empty: write e.g. {option} 1,8")
    return list(dict.fromkeys(values))  # 1,1,2 -> 1,2: a point is measured once


def is_interactive() -> bool:
    return sys.stderr.isatty()
