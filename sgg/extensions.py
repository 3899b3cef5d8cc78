"""Building and loading SGG's C++ extensions (``csrc/*.cpp``): in the background, once per
environment, cached on disk.

Each source is compiled with torch's own loader (``torch.utils.cpp_extension.load``; it needs a
C++ compiler, as ``torch.compile`` on CPU does, and ``ninja``) for this machine's CPU
(``-march=native``).

- **One build per environment.** A build is named after a hash of its source, the flags and
  everything of the environment that changes the binary or torch's own build hash
  (``environment()``: the CPU's features, Python's version and prefix, torch's version and
  install location, the compiler). Two virtual environments on one machine, or machines of
  different CPUs sharing a cache, each keep their own build instead of rebuilding one folder in
  turn (torch's loader rebuilds whenever the include paths differ).
- **Never blocking.** ``Extension.start()`` (SGG calls it at the first step) returns at once;
  a missing build is compiled by ``python -m sgg.build`` in a separate process (the compiler
  holds no GIL of ours, and a build that was started always finishes, under its lock, even if
  the training process ends first), then loaded by a background thread. Until then
  ``load()`` returns None and the callers run their torch code path (same results to float32
  rounding); they switch at their next call once it is ready (``wait=True`` waits instead).
- **Built once.** Builds run under an OS lock (released when its process dies) in the cache
  folder: processes starting together (DDP ranks, a sweep's jobs) wait for the first one's
  build and load it. torch's own marker (a plain "lock" file that it waits for forever) is
  removed by whoever holds the OS lock: it can only be stale then, left by a killed build.

A first build takes ~30 s on 2 idle cores (over a minute on a busy machine); later processes
load it in well under a second.
``TORCH_EXTENSIONS_DIR`` moves the cache; ``SGG_NATIVE=0`` turns the native code off. When a
build fails, the caller is told once (a ``RuntimeWarning``) and keeps its torch code path.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import sysconfig
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from filelock import FileLock

__all__ = ["NATIVE_ENV", "Extension", "environment", "native_disabled"]

_CSRC = Path(__file__).with_name("csrc")
# -fno-math-errno lets sqrt vectorise (results unchanged); no -ffast-math: IEEE arithmetic
_FLAGS = ["-O3", "-march=native", "-fno-math-errno"]
# OpenMP pragmas (at::parallel_for is OpenMP in torch's CPU builds) are compiled in, but the
# OpenMP runtime is NOT linked: its symbols resolve to the one torch loaded. A second runtime
# would keep its own spinning thread pool and every parallel region would wait for the other's.
_OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []
_LIB_SUFFIX = ".pyd" if sys.platform == "win32" else ".so"

NATIVE_ENV = "SGG_NATIVE"
# the helper runs ``sys.executable -m sgg.build``: only where that is a Python (an embedding
# program's own binary is not: the build then runs in the background thread itself)
_HELPER_OK = Path(sys.executable or "").name.lower().startswith("python")


def native_disabled() -> bool:
    """``SGG_NATIVE=0`` (or false/no/off): use no native code at all (the torch code paths)."""
    return os.environ.get(NATIVE_ENV, "").strip().lower() in ("0", "false", "no", "off")


def _cpu_signature() -> str:
    """What ``-march=native`` compiles for: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("flags", "model name", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def environment() -> dict[str, str]:
    """Everything besides the source and the flags that changes the binary, or the include and
    library paths torch's loader hashes: one build folder per distinct value."""
    abi = getattr(sys, "abiflags", "")
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}{abi}",
        "prefix": os.path.realpath(sys.prefix),
        "python_include": sysconfig.get_paths().get("include", ""),
        "torch": f"{torch.__version__} {torch.version.git_version}",
        "torch_location": os.path.realpath(os.path.dirname(torch.__file__)),
        "compiler": os.environ.get("CXX", "c++"),
        "cpu": _cpu_signature(),
    }


class _HelperFailed(RuntimeError):
    """The background helper's build failed (its message is the whole failure)."""


@dataclass
class _State:
    """One process's attempt at one extension (swapped whole by tests)."""

    module: ModuleType | None = None
    failure: str | None = None
    warned: bool = False
    started: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    report: dict[str, Any] | None = None


class Extension:
    """One source of ``csrc/``, built or loaded at most once per process (thread-safe).

    ``what`` names it in the warning, ``fallback`` says what runs instead when it cannot be
    built."""

    def __init__(self, source: str | Path, what: str, fallback: str) -> None:
        self.source = _CSRC / source
        self.what = what
        self.fallback = fallback
        self._lock = threading.Lock()
        self._state = _State()

    # ---------------------------------------------------------------- where
    def build_name(self) -> str:
        """Named after everything that changes the binary (source, flags, ``environment()``)."""
        digest = hashlib.sha256()
        digest.update(self.source.read_bytes())
        digest.update(" ".join(_FLAGS + _OPENMP).encode())
        digest.update(json.dumps(environment(), sort_keys=True).encode())
        return f"{self.source.stem}_{digest.hexdigest()[:12]}"

    def build_directory(self, name: str | None = None) -> Path:
        from torch.utils.cpp_extension import get_default_build_root

        root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
        return Path(root) / (name or self.build_name())

    def binary(self, name: str | None = None) -> Path:
        """The built library (present once a build has finished)."""
        name = name or self.build_name()
        return self.build_directory(name) / f"{name}{_LIB_SUFFIX}"

    def lock_path(self, name: str | None = None) -> Path:
        """The OS lock every build and load of this extension holds."""
        return Path(str(self.build_directory(name)) + ".sgg-lock")

    # ---------------------------------------------------------------- building
    def _build(self, state: _State) -> ModuleType:
        """Build (if needed) and import, in this thread, under the OS lock; sets the report."""
        from torch.utils.cpp_extension import load as load_extension

        name = self.build_name()
        directory = self.build_directory(name)
        directory.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with FileLock(str(self.lock_path(name))):
            waited = time.perf_counter() - t0
            # torch's loader marks a build with a plain "lock" file and waits, forever, for it
            # to go: a process killed while building left it, and every later run hung. Whoever
            # holds the OS lock may remove it: it can only be stale.
            (directory / "lock").unlink(missing_ok=True)
            before = _mtime(self.binary(name))
            module = load_extension(
                name=name,
                sources=[str(self.source)],
                extra_cflags=_FLAGS + _OPENMP,
                build_directory=str(directory),
                verbose=False,
            )
            built = _mtime(self.binary(name)) != before
        state.report = {
            "extension": self.source.name,
            "what": self.what,
            "action": "built" if built else "loaded",
            "seconds": round(time.perf_counter() - t0, 3),
            "waited_for_lock": round(waited, 3),
            "directory": str(directory),
            "by": "this process",
        }
        return module

    def _build_in_subprocess(self, state: _State) -> None:
        """Compile in ``python -m sgg.build`` (a process of its own session: it finishes even
        if we are killed). Raises when the compiler failed; returns quietly when the helper
        could not run (the caller then builds in-process)."""
        package_root = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, path) if p)}
        cmd = [sys.executable, "-m", "sgg.build", "--json", "--source", str(self.source)]
        try:
            done = subprocess.run(
                cmd,
                env=env,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                check=False,
            )
        except OSError:
            return
        report = _last_json(done.stdout)
        if report is None:
            return  # the helper itself did not run (no sgg on its path, ...): build here
        if report.get("action") == "failed":
            raise _HelperFailed(report.get("failure") or "build failed")
        report.update(what=self.what, by="a background process (python -m sgg.build)")
        state.report = report

    def _job(self, state: _State, background: bool) -> None:
        try:
            if background and _HELPER_OK and _mtime(self.binary()) is None:
                self._build_in_subprocess(state)
                helper = state.report
                module = self._build(state)  # loads what the helper built
                if helper is not None and state.report is not None:
                    helper["loaded_in_seconds"] = state.report["seconds"]
                    state.report = helper
            else:
                module = self._build(state)
            state.module = module
        except Exception as exc:  # no compiler, no ninja, no OpenMP, ...
            if isinstance(exc, _HelperFailed):
                state.failure = str(exc)
            else:
                state.failure = f"{type(exc).__name__}: {_gist(str(exc))}"
            state.report = {
                "extension": self.source.name,
                "what": self.what,
                "action": "failed",
                "failure": state.failure,
            }
        finally:
            state.done.set()

    # ---------------------------------------------------------------- public
    def start(self, *, background: bool = True) -> None:
        """Start building or loading this extension (once per process): in a background thread
        (returns at once), or in this thread with ``background=False``."""
        with self._lock:
            state = self._state
            if state.started:
                return
            state.started = True
        if native_disabled():
            state.failure = f"turned off by {NATIVE_ENV}=0"
            state.warned = True  # asked for: nothing to warn about
            state.report = {"extension": self.source.name, "what": self.what, "action": "off"}
            state.done.set()
            return
        if not background:
            self._job(state, background=False)
            return
        thread = threading.Thread(
            target=self._job, args=(state, True), name=f"sgg-build-{self.source.stem}", daemon=True
        )
        thread.start()

    def load(self, *, wait: bool = False) -> ModuleType | None:
        """The built extension, or None: while it is still being built (``wait=False``, the
        default: the build starts in the background if it has not), or (after one warning)
        when it cannot be built here. ``wait=True`` waits for the build."""
        state = self._state
        if state.module is not None:
            return state.module
        if not state.started:
            self.start(background=not wait)
        if wait:
            state.done.wait()
        if state.failure is not None and not state.warned:
            state.warned = True
            warnings.warn(
                f"SGG: the {self.what} could not be built ({state.failure}); {self.fallback}",
                RuntimeWarning,
                stacklevel=3,
            )
        return state.module

    def building(self) -> bool:
        """Started and not finished yet (callers run their torch code path meanwhile)."""
        state = self._state
        return state.started and not state.done.is_set()

    def failure(self) -> str | None:
        """Why the extension is unavailable (None: available, not tried yet or building)."""
        return self._state.failure

    def report(self) -> dict[str, Any] | None:
        """What this process's build or load did: action ("built", "loaded", "failed", "off"),
        seconds, directory, and by whom (this process or the background helper)."""
        return self._state.report


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _gist(message: str) -> str:
    """One line of a build error: the compiler's first "error:" line, else the last line that
    is not ninja's own ("ninja: build stopped" says nothing)."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln.lower()]
    if errors:
        return errors[0]
    own = [ln for ln in lines if not ln.startswith("ninja:")]
    return (own or lines or [""])[-1]


def _last_json(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object, if any."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
