"""One exception type for mistakes a user can fix: the CLI prints its message as one line, exit code 2."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
