"""One exception type for mistakes a user can fix: the CLI prints its message as one line, exit code 2."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def baked_batch_hint(batch: int, reason: str) -> str:
    """What to try when ONNX Runtime refuses a batch size above 1 over a shape: a model exported at batch 1 often
    holds that 1 in a Reshape's target, so only --batch 1 runs; '' for any other failure."""
    if batch <= 1 or "shape" not in reason.lower():
        return ""
    return (" (an export at batch 1 can bake that size into a Reshape's target: does --batch 1 run? then re-export "
            "with a dynamic batch axis)")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception in one line for a message: its first non-empty line, or its type when it says nothing
    (MemoryError() has no message: indexing its lines would raise again, inside an error path)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


def ort_reason(exc: BaseException, limit: int = 320) -> str:
    """ONNX Runtime's refusal in one line, its reason kept: without the status prefix and the C++ source location
    and signature, and a long one cut in the middle, not at its end (where ORT says what it supports)."""
    import re

    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+:\d+ [\w:~<>]+\([^()]*\)\s*", " ", text)  # file:line signature(...)
    text = re.sub(r"/onnxruntime_src/\S+:\d+ .*?\)\s+(?=[A-Z])", " ", text)  # a signature with parentheses inside
    text = re.sub(r"\s+", " ", text).strip() or type(exc).__name__
    text = text if len(text) <= limit else f"{text[:limit // 3].rstrip()} ... {text[-(2 * limit) // 3:].lstrip()}"
    newer = re.search(r"Unsupported model IR version: \d+, max supported IR version: (\d+)", text)
    if newer:  # onnx writes the newest IR by default: a model just saved by a newer onnx than ORT reads
        text += (f" (an onnx newer than this onnxruntime saved it: set m.ir_version = {newer.group(1)} before "
                 "onnx.save, or upgrade onnxruntime)")
    return text


def json_text(value, indent: int | None = 2) -> str:
    """JSON for our files: a NaN or an infinity (not JSON; other tools choke on them) becomes null."""
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=indent, allow_nan=False) + "\n"


def install_hint(*extras: str) -> str:
    """How to add an optional part, one way everywhere: this checkout installed again with its extra, by the pip
    beside the Python that runs staronnx (make's .venv/bin/pip), both as absolute paths so the command runs from
    anywhere. staronnx is used from its checkout, not from PyPI ('pip install staronnx[triton]' named a package that
    is not there)."""
    import sys
    from pathlib import Path

    pip = Path(sys.executable).with_name("pip")
    shown = str(pip) if pip.is_file() else "pip"
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return " or ".join(f"{shown} install -e '{checkout}[{extra}]'" for extra in extras)
    return " or ".join(f"{shown} install -e '.[{extra}]'" for extra in extras) + " in the staronnx checkout"
