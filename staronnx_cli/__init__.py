"""staronnx: which batch size gives the lowest worst-case latency at a given query rate."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("staronnx")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"
