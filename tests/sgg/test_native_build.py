"""Building the native extensions (sgg/extensions.py, sgg/build.py): one build per environment,
built once by processes that start together, and ``python -m sgg.build`` reports what and where.

The build mechanics are tested on a minimal CPython module (no torch headers: it builds in about
a second, through the same loader, flags, locks and folders as SGG's kernels), so that these
tests build for real without the ~30 s of a kernel build each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sgg import native, native_recluster

ROOT = Path(__file__).resolve().parents[2]

TINY = """// a minimal CPython module: no torch headers, builds in about a second
#include <Python.h>
#define SGG_CAT2(a, b) a##b
#define SGG_CAT(a, b) SGG_CAT2(a, b)
#define SGG_STR2(a) #a
#define SGG_STR(a) SGG_STR2(a)
static struct PyModuleDef tiny = {
    PyModuleDef_HEAD_INIT, SGG_STR(TORCH_EXTENSION_NAME), nullptr, -1};
PyMODINIT_FUNC SGG_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&tiny); }
"""


def _can_build() -> str | None:
    from torch.utils.cpp_extension import is_ninja_available

    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return "no C++ compiler"
    if not is_ninja_available():
        return "no ninja"
    return None


needs_compiler = pytest.mark.skipif(_can_build() is not None, reason=str(_can_build()))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY)
    return source


def _env(cache: Path, pythonpath: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SGG_NATIVE"}
    env["TORCH_EXTENSIONS_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), pythonpath) if p)
    return env


def _links(directory: Path) -> int:
    """How many times ninja linked the library in this folder (its log keeps every run)."""
    log = directory / ".ninja_log"
    return sum(ln.split("\t")[3].endswith(".so") for ln in log.read_text().splitlines()[1:])


def _build_json(python: str, source: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [python, "-m", "sgg.build", "--json", "--source", str(source)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_compiler
def test_two_environments_alternately_load_without_rebuilding(tiny, tmp_path):
    """Two virtual environments with the same torch (the second one created here, sharing this
    one's packages) share a cache folder: each gets its own build, and switching back and forth
    loads them without rebuilding either (torch's loader alone rebuilt one folder in turn)."""
    other = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(other)], check=True, timeout=120)  # fmt: skip
    other_python = str(other / ("Scripts" if os.name == "nt" else "bin") / "python")
    site = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
    env = _env(tmp_path / "cache", site)  # the second venv sees this one's torch
    runs = [(name, _build_json(python, tiny, env)) for name, python in
            (("a", sys.executable), ("b", other_python), ("a", sys.executable),
             ("b", other_python))]  # fmt: skip
    assert [(n, r["action"]) for n, r in runs] == [("a", "built"), ("b", "built"),
                                                  ("a", "loaded"), ("b", "loaded")]  # fmt: skip
    dirs = {n: {r["directory"] for m, r in runs if m == n} for n in "ab"}
    assert len(dirs["a"]) == len(dirs["b"]) == 1 and dirs["a"] != dirs["b"]
    for d in dirs["a"] | dirs["b"]:
        assert _links(Path(d)) == 1  # linked once, never again


@needs_compiler
def test_processes_starting_together_build_once(tiny, tmp_path):
    """Three processes start the build at once on an empty cache (as DDP ranks or a sweep's
    jobs do): one builds, the others wait for it and load it."""
    code = (
        "import json, sys\n"
        "from sgg.extensions import Extension\n"
        "ext = Extension(sys.argv[1], 'tiny', '')\n"
        "ext.start()\n"  # in the background, as SGG's first step does
        "assert ext.load(wait=True) is not None, ext.failure()\n"
        "print(json.dumps(ext.report()))\n"
    )
    env = _env(tmp_path / "cache")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tiny)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]  # fmt: skip
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["action"] for r in reports) == ["built", "loaded", "loaded"]
    assert {r["by"] for r in reports} == {"a background process (python -m sgg.build)"}
    (directory,) = {r["directory"] for r in reports}
    assert _links(Path(directory)) == 1
    assert not (Path(directory) / "lock").exists()


def test_a_build_directory_per_environment(monkeypatch):
    """Everything that changes the binary or torch's build hash names the folder."""
    ext = native.EXTENSION
    name = ext.build_name()
    for attr, value in (("prefix", "/elsewhere/venv"), ("abiflags", "t")):
        with monkeypatch.context() as m:
            m.setattr(sys, attr, value, raising=False)
            assert ext.build_name() != name, attr
    with monkeypatch.context() as m:
        m.setenv("CXX", "clang++")
        assert ext.build_name() != name
    import torch

    with monkeypatch.context() as m:
        m.setattr(torch, "__file__", "/another/site-packages/torch/__init__.py")
        assert ext.build_name() != name
    assert ext.build_name() == name
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/x/cache")
    assert ext.build_directory() == Path("/x/cache") / name
    assert ext.lock_path() == Path(f"/x/cache/{name}.sgg-lock")


def test_python_m_sgg_build_reports_what_and_where():
    """Ahead-of-time: builds (here: finds built, as the tests before built them) both
    extensions and says where they are, as training processes will look for them."""
    mods = (native.load(wait=True), native_recluster.load(wait=True))
    if None in mods:
        pytest.skip(f"extensions unavailable: {native.failure()} {native_recluster.failure()}")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sgg.build"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SGG_NATIVE": "0"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for ext in (native.EXTENSION, native_recluster.EXTENSION):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(ext.what))
        assert "already built" in line and line.endswith(str(ext.build_directory())), out
    assert "SGG_NATIVE=0 is set here" in out
    assert time.perf_counter() - t0 < 120  # loaded, not rebuilt
