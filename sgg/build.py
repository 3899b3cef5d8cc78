"""Build SGG's native extensions ahead of time: ``python -m sgg.build``.

Why: a training process never waits for a build (it runs its torch code path until the build is
ready, sgg/extensions.py), but a container image or a cluster's shared environment can carry the
builds from the start, so that every process runs native code from its first step. Builds go to
the environment's own folders under ``TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``); run the command with the Python of the environment that trains.
Prints what it built (or found already built) and where; exit status 1 when a build failed.

``--source PATH --json`` is what SGG's background build runs: one JSON report per line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .extensions import NATIVE_ENV, Extension, environment, native_disabled

__all__ = ["build_all", "main"]


def _extensions(sources: Sequence[str]) -> list[Extension]:
    if sources:
        return [Extension(Path(s).resolve(), Path(s).name, "") for s in sources]
    from . import native, native_recluster

    return [native.EXTENSION, native_recluster.EXTENSION]


def build_all(extensions: Sequence[Extension]) -> list[dict[str, Any]]:
    """Build or load each extension here and now, all at once (each build is a compiler
    process: the wall time is the longest build's, not the sum); their reports, in order."""

    def one(ext: Extension) -> dict[str, Any]:
        ext.start(background=False)
        return dict(ext.report() or {"what": ext.what, "action": "failed"})

    with ThreadPoolExecutor(max(1, len(extensions))) as pool:
        return list(pool.map(one, extensions))


def describe(reports: Sequence[dict[str, Any]], *, off: bool = False) -> str:
    """The human-readable summary: per extension, what happened, how long, where."""
    env = environment()
    lines = [
        f"SGG native extensions for this environment (Python {env['python']} at {env['prefix']}; "
        f"torch {env['torch'].split()[0]} at {env['torch_location']}):"
    ]
    for r in reports:
        action = r.get("action", "?")
        if action == "failed":
            lines.append(f"  {r['what']}: FAILED ({r.get('failure')})")
            continue
        verb = {"built": "built in", "loaded": "already built; loaded in"}.get(action, action)
        lines.append(f"  {r['what']}: {verb} {r.get('seconds', 0):.2f} s -> {r['directory']}")
    if off:
        lines.append(f"  note: {NATIVE_ENV}=0 is set here: training processes will not use them")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sgg.build", description=__doc__.splitlines()[0])
    ap.add_argument("--source", action="append", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="one JSON report per extension")
    args = ap.parse_args(argv)
    # an explicit build ignores SGG_NATIVE (it stops training processes from using the builds)
    off = native_disabled()
    os.environ.pop(NATIVE_ENV, None)
    reports = build_all(_extensions(args.source))
    if args.json:
        for r in reports:
            print(json.dumps(r), flush=True)
    else:
        print(describe(reports, off=off), flush=True)
    return 1 if any(r.get("action") == "failed" for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
