"""Building and loading SGG's C++ extensions (``csrc/*.cpp``): on first use, cached on disk.

Each source is compiled with torch's own loader (``torch.utils.cpp_extension.load``; it needs a
C++ compiler, as ``torch.compile`` on CPU does, and ``ninja``) for this machine's CPU
(``-march=native``), so a build is named after a hash of its source, the flags, the CPU's
features and torch's version: a stale build is never loaded, and a cache shared by machines of
different CPUs holds one build per CPU. A first build takes ~30 s on 2 cores; later processes
load it in about a second. ``TORCH_EXTENSIONS_DIR`` moves the cache. When a build fails, the
caller is told once (a ``RuntimeWarning``) and keeps its torch code path.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch
from filelock import FileLock

__all__ = ["Extension"]

_CSRC = Path(__file__).with_name("csrc")
# -fno-math-errno lets sqrt vectorise (results unchanged); no -ffast-math: IEEE arithmetic
_FLAGS = ["-O3", "-march=native", "-fno-math-errno"]
# OpenMP pragmas (at::parallel_for is OpenMP in torch's CPU builds) are compiled in, but the
# OpenMP runtime is NOT linked: its symbols resolve to the one torch loaded. A second runtime
# would keep its own spinning thread pool and every parallel region would wait for the other's.
_OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []


def _cpu_signature() -> str:
    """What ``-march=native`` compiles for: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("flags", "model name", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


class Extension:
    """One source of ``csrc/``, built and loaded at most once per process (thread-safe).

    ``what`` names it in the warning, ``fallback`` says what runs instead when it cannot be
    built."""

    def __init__(self, source: str, what: str, fallback: str) -> None:
        self.source = _CSRC / source
        self.what = what
        self.fallback = fallback
        self._lock = threading.Lock()
        self._module: ModuleType | None = None
        self._failure: str | None = None

    def build_name(self) -> str:
        """Named after everything that changes the binary."""
        digest = hashlib.sha256()
        python = f"{sys.version_info.major}.{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
        for part in (self.source.read_bytes(), " ".join(_FLAGS + _OPENMP).encode(),
                     _cpu_signature().encode(), torch.__version__.encode(),
                     python.encode()):  # fmt: skip
            digest.update(part)
        return f"{self.source.stem}_{digest.hexdigest()[:12]}"

    def build_directory(self) -> Path:
        from torch.utils.cpp_extension import get_default_build_root

        root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
        return Path(root) / self.build_name()

    def _build(self) -> ModuleType:
        from torch.utils.cpp_extension import load as load_extension

        directory = self.build_directory()
        directory.mkdir(parents=True, exist_ok=True)
        # torch's loader marks a build with a plain "lock" file and waits, forever, for it to go:
        # a process killed while building (Ctrl-C, preemption: the first step of a run) left it,
        # and every later run hung. An OS lock (released when its process dies) serialises our
        # builds instead; whoever holds it may remove a "lock" file, which can only be stale.
        with FileLock(str(directory) + ".sgg-lock"):
            (directory / "lock").unlink(missing_ok=True)
            return load_extension(
                name=self.build_name(),
                sources=[str(self.source)],
                extra_cflags=_FLAGS + _OPENMP,
                build_directory=str(directory),
                verbose=False,
            )

    def load(self) -> ModuleType | None:
        """The built extension, building it on first use; None (after one warning) if it
        cannot be built here."""
        if self._module is not None or self._failure is not None:
            return self._module
        with self._lock:
            if self._module is not None or self._failure is not None:
                return self._module
            try:
                self._module = self._build()
            except Exception as exc:  # no compiler, no ninja, no OpenMP, ...
                last = str(exc).strip().splitlines()[-1:] or [""]
                self._failure = f"{type(exc).__name__}: {last[0]}"
                warnings.warn(
                    f"SGG: the {self.what} could not be built ({self._failure}); {self.fallback}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return self._module

    def failure(self) -> str | None:
        """Why the extension is unavailable (None: available or not tried yet)."""
        return self._failure
