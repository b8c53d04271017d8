"""The layers of docs/architecture.md, held: no package of staronnx_cli imports one drawn above it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "staronnx_cli"
LAYERS = [  # top first; a package may import packages of its own layer (if no cycle) or below
    {"cli", "__main__"},
    {"sweep", "plots", "advise", "mix"},
    {"systems"},
    {"runtime", "split"},
    {"profile", "load", "metrics", "results", "zoo", "triton"},
    {"errors", "modelio", "ortenv", "machine", "hostload", "devices", "cachedir", "tomlfile", "inputfile", "outputfile",
     "__init__"},
]
LEVEL = {package: i for i, layer in enumerate(LAYERS) for package in layer}


def imports_between_packages() -> set[tuple[str, str]]:
    edges = set()
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        package = parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                here = list(path.relative_to(ROOT).parent.parts)
                base = here[:len(here) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
                names = target[:1] or [alias.name for alias in node.names]  # `from .. import modelio`
                edges |= {(package, name) for name in names if name != package}
    return edges


def test_no_package_imports_a_layer_above_it_and_every_package_has_a_layer():
    edges = imports_between_packages()
    packages = {p.name.removesuffix(".py") for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert packages <= set(LEVEL), packages - set(LEVEL)  # a new package: place it in docs/architecture.md and here
    upward = sorted((a, b) for a, b in edges if b in LEVEL and LEVEL[b] < LEVEL[a])
    assert upward == []
    sideways = {(a, b) for a, b in edges if b in LEVEL and LEVEL[b] == LEVEL[a]}
    assert not {(a, b) for a, b in sideways if (b, a) in sideways}  # no cycle within a layer
