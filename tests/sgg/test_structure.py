"""sgg/'s shape: small functions, its own room's imports, no private torch helper imported."""

from __future__ import annotations

import ast
from pathlib import Path

SGG = Path(__file__).resolve().parents[2] / "sgg"
MAX_LINES = 80


def _trees() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text()) for p in sorted(SGG.glob("*.py"))}


def test_no_function_over_80_lines():
    long = [
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in _trees().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert not long, long


def test_sgg_imports_neither_recorder_nor_dashboard_nor_private_torch_names():
    bad = []
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
                if node.module.startswith("torch"):
                    bad += [f"{name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_")]  # fmt: skip
            else:
                continue
            bad += [f"{name}: {m}" for m in mods if m.split(".")[0] in ("recorder", "dashboard")]
    assert not bad, bad
