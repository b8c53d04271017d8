"""The layers of docs/architecture.md, held: no package of staronnx_cli imports one drawn above it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "staronnx_cli"
LAYERS = [  # top first; a package may import packages of its own layer (if no cycle) or below
    {"cli", "__main__"},
    {"sweep", "plots", "advise", "mix", "fleet"},
    {"analysis"},
    {"systems"},
    {"runtime", "split"},
    {"profile", "load", "metrics", "results", "zoo", "triton", "shapes"},
    {"errors", "modelio", "ortenv", "machine", "hostload", "devices", "cachedir", "tomlfile", "inputfile", "outputfile",
     "kinds", "rayproc", "memlimit", "dirlock", "inputdata", "__init__"},
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


def test_no_package_imports_another_packages_private_names():
    """A name with a leading underscore is its package's own: another package that needs it gets a public one."""
    found = []
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
                here = list(path.relative_to(ROOT).parent.parts)
                target = (here[:len(here) - (node.level - 1)] + node.module.split("."))[0]
                found += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and target != package]
    assert found == []


def test_worker_kinds_are_compared_only_in_the_kinds_module():
    """`kind == "cuda"` spread over the code made a new kind a hunt; kinds.py answers what a kind is."""
    names = {"cpu", "cuda"}
    found = []
    for path in ROOT.rglob("*.py"):
        if path.name in ("kinds.py", "hostload.py"):  # hostload reads /proc/stat, whose lines are named cpu, cpu0
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                     for op in node.ops):
                sides = [node.left, *node.comparators]  # kind == "cuda", kind in ("cpu", "cuda")
                if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):  # (a timing set == {"cpu"} is not)
                    sides += [e for s in sides if isinstance(s, (ast.Tuple, ast.List, ast.Set)) for e in s.elts]
                if any(isinstance(s, ast.Constant) and s.value in names for s in sides):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "startswith" and node.args and isinstance(node.args[0], ast.Constant) and \
                    str(node.args[0].value).rstrip(":") in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_functions_outside_the_cli_stay_short_and_take_few_parameters():
    """At most 60 lines and 8 parameters (self aside): beyond, a function does two things, or wants an object."""
    found = []
    for path in ROOT.rglob("*.py"):
        if path.relative_to(ROOT).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")]
                length = node.end_lineno - node.lineno + 1
                if length > 60 or len(params) > 8:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines, "
                                 f"{len(params)} parameters")
    assert found == []
