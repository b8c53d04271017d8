"""One exception type for mistakes a user can fix: the CLI prints its message as one line, exit code 2."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception in one line for a message: its first non-empty line, or its type when it says nothing
    (MemoryError() has no message: indexing its lines would raise again, inside an error path)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
