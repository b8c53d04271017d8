"""staronnx: which batch size gives the lowest worst-case latency at a given query rate."""


def __getattr__(name: str):
    """`__version__` on first use: importlib.metadata costs 35 ms at start-up, where a Ctrl-C has no handler yet."""
    if name != "__version__":
        raise AttributeError(name)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("staronnx")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"
