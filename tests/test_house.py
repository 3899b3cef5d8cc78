"""The house's shape (docs/architecture.md): which room may import which, and no import circle.

Read from the source with `ast` (every import, also those inside functions: a lazy import is
still a dependency), so a new circle or a forbidden reach fails here before a review finds it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("sgg", "sgg_train", "recorder", "runformat", "dashboard")

# what each room may import of the others (docs/architecture.md)
MAY_IMPORT = {
    "sgg": set(),
    "runformat": set(),
    "recorder": {"sgg", "runformat"},
    "sgg_train": {"sgg", "recorder", "runformat"},
    "dashboard": {"runformat"},
}
# third-party packages a room must never import (the dashboard opens runs without PyTorch;
# the run format needs pyarrow and the standard library only)
NEVER = {
    "dashboard": {"torch"},
    "runformat": {"torch", "pandas", "numpy", "streamlit"},
    "sgg": {"pandas", "pyarrow", "streamlit"},
}


def modules(room: str) -> dict[str, Path]:
    out = {}
    for path in sorted((REPO / room).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path) -> Iterator[str]:
    """Every module `path` imports, absolute (relative imports resolved against `name`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def graph() -> dict[str, set[str]]:
    """{module: the project's modules it imports}, over every room. `from pkg import mod` is an
    edge to `pkg.mod` only, and a module's own parent packages are not edges (Python runs them
    first whatever the module imports)."""
    mods = {n: p for room in ROOMS for n, p in modules(room).items()}
    out = {}
    for n, p in mods.items():
        found = {m for m in imports(n, p) if m in mods and m != n}
        found -= {m for m in found if any(f.startswith(m + ".") for f in found)}
        out[n] = {m for m in found if not n.startswith(m + ".")}
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def _package_edges(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module edges folded onto packages (a package's `__init__` re-exports do not count as a
    circle of the package with its own modules)."""
    out: dict[str, set[str]] = {}
    for a, targets in g.items():
        pa = a.rpartition(".")[0] if "." in a and not modules_is_package(a) else a
        for b in targets:
            pb = b.rpartition(".")[0] if "." in b and not modules_is_package(b) else b
            if pa != pb and not pb.startswith(pa + ".") and not pa.startswith(pb + "."):
                out.setdefault(pa, set()).add(pb)
    for p in list(out):
        for q in out[p]:
            out.setdefault(q, set())
    return out


def modules_is_package(name: str) -> bool:
    return (REPO / name.replace(".", "/") / "__init__.py").is_file()


def test_no_module_imports_in_a_circle():
    assert cycles(graph()) == []


def test_no_package_imports_in_a_circle():
    assert cycles(_package_edges(graph())) == []


def test_rooms_import_only_what_the_architecture_allows():
    wrong = []
    for room in ROOMS:
        for name, path in modules(room).items():
            for imp in imports(name, path):
                top = imp.split(".")[0]
                if top in ROOMS and top != room and top not in MAY_IMPORT[room]:
                    wrong.append(f"{name} imports {imp}")
                if top in NEVER.get(room, ()):
                    wrong.append(f"{name} imports {imp}")
    assert wrong == []


def test_the_training_command_uses_the_recorders_public_api_only():
    """`sgg_train` records like a user would: `from recorder import ...`, never its insides."""
    inside = [
        f"{name} imports {imp}"
        for name, path in modules("sgg_train").items()
        for imp in imports(name, path)
        if imp.startswith("recorder.") and imp.split(".")[1] not in _public("recorder")
    ]
    assert inside == []


def _public(package: str) -> set[str]:
    """The names a package's `__init__` lists in `__all__`."""
    tree = ast.parse((REPO / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
