"""Runs on an object store (`s3://bucket/prefix`, `gs://...`): found by one listing.

An object store has no folders to walk and every request is a round trip, so the whole prefix
is listed once (`runformat.storage.walk`: 1,000 keys a request) and everything the loader needs
at listing time comes from that listing: the run folders (keys ending in `run.json`), each
table's live chunks with their (size, mtime) as signatures, and the foreign runs' files (which
are read from local folders only, and said so). Then each run.json is read, side by side, and
kept while its (size, mtime) is unchanged, except for a running run: S3's mtime has one-second
resolution, and a running run rewrites run.json (same size, same second) at every flush, so
its run.json is read again at every listing (the live heartbeat is fresh).

Keys in a dot-folder, or starting with a dot, are skipped, as the loader skips them on disk.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

from dashboard import loader
from runformat import chunks, schema, storage

MAX_OBJECTS_LISTED = 500_000
RUN_JSON_THREADS = 16
FOREIGN_SHOWN = 3

_RUN_JSON: dict[tuple[str, int, int], loader.Run] = {}  # (uri, size, mtime_ns) -> its Run
_LOCK = threading.Lock()


def clear_cache() -> None:
    with _LOCK:
        _RUN_JSON.clear()


def discover(root: str | storage.ObjectPath) -> loader.Discovery:
    """Every run under a store prefix, as `loader.discover_runs` finds them on disk."""
    try:
        where = storage.locate(root)
    except ValueError as e:
        return loader.Discovery(None, [], [f"Cannot open the {e}"])  # never echoes a secret
    try:
        objects, cut = storage.walk(where, limit=MAX_OBJECTS_LISTED)
        if not objects and not storage.bucket_exists(where):
            return loader.Discovery(None, [], [f"The bucket of `{where}` does not exist."])
    except OSError as e:
        return loader.Discovery(None, [], [f"Cannot open `{where}` ({storage.scrub(str(e))})."])
    keys = {k: st for k, st in objects if not any(p.startswith(".") for p in k.split("/"))}
    rels = sorted(_run_folders(keys))
    messages = []
    if cut:
        messages.append(
            f"Stopped listing after {MAX_OBJECTS_LISTED:,} objects; choose a narrower prefix."
        )
    listings = _chunk_listings(where, keys, rels)
    runs = _read_run_jsons(where, keys, rels)
    runs = [
        loader.with_damage(dataclasses.replace(r, listing=listings[r.rel]), where) for r in runs
    ]
    messages += _foreign_message(keys, rels)
    if not runs:
        messages.append(f"No runs found under `{where}` (a run is a folder containing run.json).")
    return loader.Discovery(where, runs, messages)


def _run_folders(keys: dict[str, storage.Stat]) -> set[str]:
    """The folders (keys below the root, "" for the root itself) that hold a run.json, leaving
    out any inside another run's tables/ folder (as the walk on disk does)."""
    tail = "/" + schema.RUN_JSON
    found = {k[: -len(tail)] for k in keys if k.endswith(tail)}
    if schema.RUN_JSON in keys:
        found.add("")
    return {rel for rel in found if not _in_tables_of(rel, found)}


def _in_tables_of(rel: str, runs: set[str]) -> bool:
    """Whether `rel` lies inside the tables/ folder of another run among `runs`."""
    parts = rel.split("/")
    return any(
        part == schema.TABLES_DIR and "/".join(parts[:i]) in runs for i, part in enumerate(parts)
    )


def _chunk_listings(
    root: storage.ObjectPath, keys: dict[str, storage.Stat], rels: list[str]
) -> dict[str, dict[str, tuple[loader.ChunkSig, ...]]]:
    """Each run's live chunks per table, in write order, with (URI, size, mtime) signatures."""
    names: dict[str, dict[str, list[str]]] = {rel: {} for rel in rels}
    heads = {(f"{rel}/" if rel else "") + schema.TABLES_DIR + "/": rel for rel in rels}
    for key in keys:
        head, sep, rest = key.rpartition(f"{schema.TABLES_DIR}/")
        if not sep or (head + sep) not in heads:
            continue
        table, _, name = rest.partition("/")
        if name and "/" not in name and table in schema.TABLES:
            names[heads[head + sep]].setdefault(table, []).append(name)
    out: dict[str, dict[str, tuple[loader.ChunkSig, ...]]] = {}
    for rel, tables in names.items():
        out[rel] = {}
        for table, files in tables.items():
            prefix = (f"{rel}/" if rel else "") + f"{schema.TABLES_DIR}/{table}/"
            sigs = []
            for name in chunks.live_chunks(files):
                st = keys[prefix + name]
                sigs.append((str(root / (prefix + name)), st.size, st.mtime_ns))
            out[rel][table] = tuple(sigs)
    return out


def _read_run_jsons(
    root: storage.ObjectPath, keys: dict[str, storage.Stat], rels: list[str]
) -> list[loader.Run]:
    """The `Run` of every run folder: cached by its run.json's (size, mtime), re-read while
    it says the run is running; the others read side by side (one GET each)."""
    todo, runs = [], {}
    for rel in rels:
        key = (f"{rel}/" if rel else "") + schema.RUN_JSON
        st = keys[key]
        sig = (str(root / key), st.size, st.mtime_ns)
        with _LOCK:
            hit = _RUN_JSON.get(sig)
        if hit is not None and hit.meta.get("status") != schema.STATUS_RUNNING:
            runs[rel] = hit
        else:
            todo.append((rel, sig))
    if todo:
        with ThreadPoolExecutor(max_workers=min(RUN_JSON_THREADS, len(todo))) as ex:
            for (rel, sig), run in zip(todo, ex.map(lambda j: _read(root, *j), todo), strict=True):
                runs[rel] = run
                with _LOCK:
                    if len(_RUN_JSON) > loader.MAX_REMEMBERED:
                        _RUN_JSON.clear()
                    _RUN_JSON[sig] = run
    return [runs[rel] for rel in rels]


def _read(root: storage.ObjectPath, rel: str, sig: tuple[str, int, int]) -> loader.Run:
    run_dir = root / rel if rel else root
    label = rel or "."
    if sig[1] > loader.MAX_RUN_JSON_BYTES:
        return loader.Run(
            run_dir, rel, {}, (f"`{label}`: run.json is too large to be real.",), False
        )
    try:
        data = storage.read_bytes(run_dir / schema.RUN_JSON, max_bytes=loader.MAX_RUN_JSON_BYTES)
    except (OSError, ValueError) as e:
        problem = f"`{label}`: run.json could not be read ({storage.scrub(str(e))})."
        return loader.Run(run_dir, rel, {}, (problem,), False)
    return loader.parse_run_json(data, run_dir, rel)


def _foreign_message(keys: dict[str, storage.Stat], rels: list[str]) -> list[str]:
    """A sentence naming the folders that hold TensorBoard, W&B, MLflow or Lightning CSV files
    outside our runs: foreign runs are read from local folders only."""
    from dashboard.foreign.csv_logger import METRICS_CSV
    from dashboard.foreign.mlflow_store import SQLITE_SUFFIXES
    from dashboard.foreign.tensorboard import EVENT_PREFIX

    ours = tuple(f"{rel}/" for rel in rels if rel)
    folders: dict[str, None] = {}
    for key in keys:
        if "" in rels or key.startswith(ours):
            continue  # inside one of our runs
        head, _, name = key.rpartition("/")
        if (
            name.startswith(EVENT_PREFIX)
            or name.endswith(".wandb")
            or name in (METRICS_CSV, "meta.yaml")
            or name.lower().endswith(SQLITE_SUFFIXES)
        ):
            folders[head or "."] = None
    if not folders:
        return []
    shown = ", ".join(f"`{f}`" for f in list(folders)[:FOREIGN_SHOWN])
    more = f" and {len(folders) - FOREIGN_SHOWN} more" if len(folders) > FOREIGN_SHOWN else ""
    return [
        f"{shown}{more}: TensorBoard, W&B, MLflow and Lightning CSV runs are read from local "
        "folders only, not from an object store; copy them to a local folder to compare them."
    ]


loader.register_store_backend(discover=discover, clear=clear_cache)
