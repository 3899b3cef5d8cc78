"""The dashboard's shape: one definitions table shown everywhere, layout-only app, no shortcuts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
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
        if path.name != "tables.py":  # the table reader's own cache
            assert "._results" not in src, path


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


# ----------------------------------------------------------------- issue 19: the rooms' interior

MAX_FUNCTION_LINES = 80
OPTIMIZER_NAMES = {"sgg", "adamw"}


def _trees() -> dict[Path, ast.Module]:
    """Every module of the dashboard (foreign readers and the loader included), parsed."""
    return {p: ast.parse(p.read_text(), filename=str(p)) for p in sorted(DASH.rglob("*.py"))}


def test_no_dashboard_function_is_over_80_lines():
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} "
        f"({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def _imported_modules(tree: ast.Module) -> set[str]:
    """Every module a file imports, `from a import b` as both a and a.b (b may be a module)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_no_view_imports_another_view():
    views = {p.stem for p in (DASH / "views").glob("*.py") if p.stem != "__init__"}
    assert {"summary", "loss", "gradients", "sweep", "runs", "clusters"} <= views
    for path, tree in _trees().items():
        if path.parent.name != "views" or path.stem == "__init__":
            continue
        imported = _imported_modules(tree)
        others = {f"dashboard.views.{v}" for v in views - {path.stem}}
        assert not imported & (others | {"dashboard.views"}), (path.name, imported & others)


def test_a_view_is_found_importing_another():
    """The check above can fail: a view importing a sibling either way is caught."""
    for src in (
        "from dashboard.views.loss import train_figure",
        "from dashboard.views import loss",
    ):
        imported = _imported_modules(ast.parse(src))
        assert "dashboard.views.loss" in imported


def _name_tests(tree: ast.Module) -> list[str]:
    """Comparisons of a value with an optimizer's name written out ("sgg", "AdamW"), and
    startswith / endswith / in tests on one: the one test is `settings.applies_sgg` /
    `is_adamw` (and `Run.is_sgg`), which compare with settings.SGG / ADAMW."""

    def is_name(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.strip().lower() in OPTIMIZER_NAMES
        )

    def tests_a_name(node: ast.AST) -> bool:
        if isinstance(node, ast.Compare):
            return any(map(is_name, [node.left, *node.comparators]))
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith", "count", "find", "index")
            and any(map(is_name, node.args))
        )

    found = [f"{n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree) if tests_a_name(n)]
    return found


def test_optimizer_names_are_tested_in_one_place():
    found = {
        str(path.relative_to(REPO)): hits
        for path, tree in _trees().items()
        if (hits := _name_tests(tree))
    }
    assert not found, found


@pytest.mark.parametrize(
    "src",
    [
        'optimizer_name(run.meta).lower() == "sgg"',
        's["optimizer"] != "adamw"',
        '"adamw" in c.base_name.lower()',
        'name.startswith("SGG")',
    ],
)
def test_a_string_test_on_an_optimizer_name_is_found(src):
    assert _name_tests(ast.parse(src))


def test_the_one_optimizer_test_is_the_runs_and_the_pages():
    """`Run.optimizer` and `Run.is_sgg` say what every label says (`groups.optimizer_name`),
    "unknown optimizer" included."""
    from dashboard import loader
    from dashboard.metrics import groups

    runs = [r for r in loader.discover_runs(REPO / "sample_runs").runs if r.readable]
    runs.append(loader.Run(REPO, "x", {"status": "finished"}))  # says no optimizer
    for run in runs:
        assert run.optimizer == groups.optimizer_name(run.meta)
        assert run.is_sgg == (run.optimizer == "sgg")
        assert run.shadow == groups.shadow_of(run.meta)
    assert runs[-1].optimizer == groups.UNKNOWN_OPTIMIZER
    assert {r.is_sgg for r in runs[:-1]} == {True, False}
