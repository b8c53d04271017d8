"""Shared fixtures: an isolated zoo cache, wide non-wrapping Rich output, a CLI runner."""

import os

os.environ["COLUMNS"] = "200"  # Rich reads it when the consoles are created: no wrapped lines in tests
os.environ.setdefault("STARONNX_CACHE", os.path.join(os.path.dirname(__file__), ".cache-staronnx"))

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from staronnx_cli.cli.app import app  # noqa: E402


@pytest.fixture(autouse=True)
def signal_handlers():
    """Each test leaves Ctrl-C and SIGTERM as it found them: entry.main() run in this process sets its exit's own
    (a second signal ignored), and a later test's real SIGINT must still raise KeyboardInterrupt."""
    import signal

    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in kept.items():
        signal.signal(sig, handler)


@pytest.fixture
def cli():
    """Invoke `staronnx ARGS...`; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="session")
def tiny_cnn_path(tmp_path_factory):
    from staronnx_cli.zoo.cache import build_cached

    return build_cached("tiny_cnn")[0]


def assert_one_line_error(result, *fragments: str):
    """The bad-input contract: exit code 2, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
