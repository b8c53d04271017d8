"""Reading a TOML input file (a platform, a mix): a missing or malformed file is one line that names it and
the fix, never a traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .errors import UserError
from .inputfile import checked_input

MAX_TOML_BYTES = 64 * 2**20  # a platform's [[times]] or a mix: tens of KiB in practice


def read_toml(path: Path, kind: str, how_to_write: str) -> dict:
    """The file's tables; `kind` names it in the error ("platform file"), `how_to_write` says where to start."""
    checked_input(path, kind, how_to_write, max_bytes=MAX_TOML_BYTES)
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{kind} '{path}' is not valid TOML ({exc})") from None
