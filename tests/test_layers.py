"""The package's layering: imports run one way, and no module reaches into another's
private names. Read from the source (every import, at module level or inside a function)."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import segany

ROOT = Path(segany.__file__).parent
# the core answers what the network computes: it never reaches the opt-in stages or above
CORE = ("segany.predictor", "segany.session", "segany.embedding", "segany.models",
        "segany.engine", "segany.everything", "segany.loading", "segany.registry")  # fmt: skip
ABOVE_CORE = ("segany.refine", "segany.eval", "segany.train", "segany.server", "segany.cli")
# the data engine's server sits on top of everything but the CLI
BELOW_SERVER = ("segany.data", "segany.refine", "segany.eval", "segany.train", *CORE)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text()) for p in sorted(ROOT.rglob("*.py"))}


def _target(module: str, node: ast.ImportFrom) -> str:
    """The absolute name ``from ... import`` reads from in ``module``."""
    if node.level == 0:
        return node.module or ""
    is_package = (ROOT / Path(*module.split(".")[1:]) / "__init__.py").is_file()
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports() -> dict[str, set[str]]:
    """module -> the segany modules it imports (a name imported from a package counts as
    its submodule when there is one)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                target = _target(name, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    graph[name].add(sub if sub in modules else target)
        graph[name] = {t for t in graph[name] if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_import_loops() -> None:
    assert _cycles(_imports()) == []


def test_the_core_knows_nothing_of_the_layers_above_it() -> None:
    graph = _imports()
    for name in graph:
        if name.startswith(CORE):
            above = {m for m in _reach(graph, name) if m.startswith(ABOVE_CORE)}
            assert not above, f"{name} reaches {sorted(above)}"


def test_only_the_cli_reaches_the_server() -> None:
    graph = _imports()
    for name in graph:
        if name.startswith(BELOW_SERVER):
            server = {m for m in _reach(graph, name) if m.startswith("segany.server")}
            assert not server, f"{name} reaches {sorted(server)}"


def test_the_engine_knows_nothing_of_scenes() -> None:
    graph = _imports()
    for name in graph:
        if name.startswith("segany.engine"):
            assert "segany.data.scenes" not in _reach(graph, name), name


def test_no_module_imports_another_modules_private_names() -> None:
    offences = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _target(name, node).startswith("segany"):
                offences += [f"{name}: {a.name}" for a in node.names if a.name.startswith("_")]
            private = isinstance(node, ast.Attribute) and node.attr.startswith("_")
            if private and isinstance(node.value, ast.Name) and node.value.id in _aliases(tree):
                offences.append(f"{name}: {node.value.id}.{node.attr}")  # module._name
    assert offences == []


def _aliases(tree: ast.Module) -> set[str]:
    """Names bound to segany modules by ``import segany...`` / ``from segany import mod``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if "segany" in a.name}
        elif isinstance(node, ast.ImportFrom) and node.level and not node.module:
            names |= {a.asname or a.name for a in node.names}
    return names - {"__version__"}


def test_importing_segany_loads_no_opencv_and_no_server() -> None:
    code = (
        "import segany, segany.cli.main, sys; loaded = {'cv2', 'fastapi', 'sqlalchemy', "
        "'uvicorn', 'pycocotools'} & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
