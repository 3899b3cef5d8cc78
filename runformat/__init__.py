"""The run directory format, defined once: schema, chunk names, run.json (and its typed
description, `run_info`), atomic writes.

Needs pyarrow and the standard library only (no torch, no pandas), so the recorder writes through
it, the dashboard reads through it and test fixtures generate runs through it. The prose version
is docs/run-format.md.
"""

from runformat.schema import FORMAT_NAME, FORMAT_VERSION, TABLES

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "TABLES"]
