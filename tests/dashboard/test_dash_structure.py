"""The dashboard's shape: one definitions table shown everywhere, layout-only app, no shortcuts."""

from __future__ import annotations

import ast
from pathlib import Path

from dash_fixtures import REPO

from dashboard import narrative

DASH = REPO / "dashboard"


def test_docs_show_the_same_definitions_as_the_page():
    doc = (REPO / "docs" / "dashboard.md").read_text()
    block = doc.split("<!-- definitions:start -->\n", 1)[1].split("\n<!-- definitions:end -->")[0]
    assert block == narrative.definitions_markdown()


def test_definitions_have_no_programmer_notes():
    text = narrative.definitions_markdown()
    for word in ("FINAL_WINDOW", "DataFrame", "function", "array", "Streamlit"):
        assert word not in text


def _sources() -> dict[Path, str]:
    skip = {"loader.py"}
    return {
        p: p.read_text()
        for p in DASH.rglob("*.py")
        if p.name not in skip and "foreign" not in p.parts
    }


def test_no_private_reach_no_docstring_cutting_no_path_edits():
    for path, src in _sources().items():
        assert "sys.path" not in src, path
        assert "__doc__" not in src, path
        if path.name != "context.py":
            assert "._tables" not in src, path


def test_app_only_lays_out():
    tree = ast.parse((DASH / "app.py").read_text())
    imported = {
        a.name.split(".")[0] if isinstance(n, ast.Import) else (n.module or "")
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not {"numpy", "pandas", "dashboard.metrics"} & imported
    assert not any(isinstance(n, ast.BinOp) for n in ast.walk(tree)), "arithmetic in app.py"


def test_constants_defined_once():
    for name in ("SPIKE_WINDOW", "FINAL_WINDOW", "LOSS_SPIKE_FACTOR", "LEVEL", "CARDS_UP_TO"):
        defs = [p for p, s in _sources().items() if f"\n{name} = " in s]
        assert len(defs) == 1, (name, defs)


def test_every_view_is_one_module():
    from dashboard.views import PAGES

    for name, page in PAGES.items():
        assert page.__module__.startswith("dashboard.views."), name
        assert page.__name__ == "page"
