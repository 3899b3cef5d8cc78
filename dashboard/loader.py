"""Find and read run directories (docs/run-format.md, through `runformat`) safely and fast.

Nothing here raises on bad data: every problem becomes a plain-language message that the page
shows next to the runs that did load. Only files under the chosen root are read (paths are
resolved, symlinks that leave the root are refused) and only JSON and Parquet are parsed.

Caching: each Parquet chunk is read once per (path, size, mtime) and kept as an immutable Arrow
table; a table of a run is the concatenation of its chunks, cached on the tuple of its chunks'
signatures. A live run that flushes a new chunk therefore costs one small read, not a reload.

Damage (`runformat.integrity`): every read verifies the chunks' page checksums; a damaged chunk
is left out and named, never read as numbers. Listing a run looks at the last bytes of each of
its chunks (a cut-short file is found without reading it) and recalls every chunk a read found
damaged: `Run.damage` names them all, whatever table, wherever the run is listed. Reads of a
few columns check only those columns' pages: `verify_runs` checks the runs on show whole, once.

Runs on an object store (`--runs s3://bucket/prefix`, `runformat.storage`): one listing of the
prefix finds every run.json and every chunk with its (size, mtime), which stand in for the
file signatures (`dashboard.store_runs`); a `Run` found there carries its chunk listing, so
reading it costs no further listing, and a live refresh lists the prefix again. Chunks are
read by one GET each, concurrently; a cut-short object is named by the first read of it
rather than at listing (objects are written whole, one PUT each: a short one was copied in
from a broken file, and a tail read per chunk would cost a request per chunk at listing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dashboard.metrics.health import live_status, note_nonfinite_loss
from dashboard.metrics.settings import applies_sgg, optimizer_of, shadow_of
from runformat import chunks, integrity, run_json, schema, storage

KNOWN_FORMAT_VERSION = schema.FORMAT_VERSION
TABLES = tuple(schema.TABLES)
MAX_RUN_JSON_BYTES = run_json.MAX_BYTES
MAX_DIRS_SCANNED = 20_000

# The columns the contract guarantees, from the one schema (a reader keeps any extra, newer
# nullable columns; columns a version-1 run lacks read as nulls).
EXPECTED: dict[str, dict[str, pa.DataType]] = {t: schema.column_types(t) for t in TABLES}


# --------------------------------------------------------------------------- paths


def is_within(path: Path, root: Path) -> bool:
    """True when `path`, with every symlink resolved, lies inside `root` (already resolved)."""
    try:
        path.resolve(strict=True).relative_to(root)
        return True
    except (OSError, ValueError, RuntimeError):
        return False


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One run directory: its metadata (run.json) and what was wrong with it, if anything."""

    path: Path | storage.ObjectPath  # resolved (a prefix on an object store)
    rel: str  # path relative to the root, "/"-separated: the run's id in the URL
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    problems: tuple[str, ...] = ()  # everything wrong, `damage` included
    readable: bool = True  # False: run.json unusable, tables are not read
    damage: tuple[str, ...] = field(default=(), compare=False)  # damaged chunks, any table
    # on an object store: each table's live chunks as the discovery's listing found them
    listing: dict[str, tuple[ChunkSig, ...]] | None = field(
        default=None, compare=False, hash=False, repr=False
    )

    @property
    def name(self) -> str:
        name = self.meta.get("name")
        return str(name) if name else (Path(self.rel).name or self.path.name)

    @property
    def optimizer(self) -> str:
        """Lower case, "unknown optimizer" when the run does not say (the typed description's,
        as every page names it)."""
        return optimizer_of(self.meta)

    @property
    def is_sgg(self) -> bool:
        """Trained with SGG: its factors were applied (a shadow clustering is not)."""
        return applies_sgg(self.meta)

    @property
    def hyperparameters(self) -> dict:
        opt = self.meta.get("optimizer")
        hp = opt.get("hyperparameters") if isinstance(opt, dict) else None
        return hp if isinstance(hp, dict) else {}

    @property
    def learning_rate(self) -> float | None:
        """The configured peak learning rate (not the scheduled value at the last flush)."""
        cfg = self.meta.get("config") if isinstance(self.meta.get("config"), dict) else {}
        hp = self.hyperparameters
        for v in (hp.get("initial_lr"), cfg.get("lr"), cfg.get("learning_rate"), hp.get("lr")):
            if isinstance(v, int | float) and not isinstance(v, bool):
                return float(v)
        return None

    @property
    def shadow(self) -> bool:
        """Another optimizer that computed SGG's grouping only to show it (not applied)."""
        return shadow_of(self.meta)

    @property
    def status(self) -> str:
        return str(self.meta.get("status") or "unknown")

    @property
    def last_step(self) -> int | None:
        v = self.meta.get("last_flushed_step")
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    @property
    def has_clustering(self) -> bool:
        opt = self.meta.get("optimizer")
        return isinstance(opt, dict) and bool(opt.get("sgg") or opt.get("shadow"))


def display_status(run: Run, now: dt.datetime | None = None) -> str:
    """ "finished", "failed", "running", "stopped (killed or crashed)", or "unreadable": the one
    liveness rule (`dashboard.metrics.health.live_status`: pid on the same host, else heartbeat)."""
    if not run.readable:
        return "unreadable"
    return live_status(run.meta, now)


def read_run_json(path: Path, root: Path, rel: str) -> Run:
    """Validate one run.json. Problems are collected; only fatal ones make the run unreadable."""
    run_dir = path.parent.resolve()
    label = rel or "."
    if not is_within(path, root):
        return Run(
            run_dir,
            rel,
            {},
            (f"`{label}`: run.json points outside the folder; refused.",),
            readable=False,
        )
    try:
        if path.stat().st_size > MAX_RUN_JSON_BYTES:
            return Run(run_dir, rel, {}, (f"`{label}`: run.json is too large to be real.",), False)
        data = path.read_bytes()
    except OSError as e:
        return Run(run_dir, rel, {}, (f"`{label}`: run.json could not be read ({e}).",), False)
    return parse_run_json(data, run_dir, rel)


def parse_run_json(data: bytes, run_dir: Path | storage.ObjectPath, rel: str) -> Run:
    """The `Run` of a run.json's bytes, wherever they were read from: problems collected, only
    fatal ones make the run unreadable."""
    label = rel or "."
    try:
        meta = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return Run(run_dir, rel, {}, (f"`{label}`: run.json could not be read ({e}).",), False)
    except json.JSONDecodeError as e:
        return Run(
            run_dir,
            rel,
            {},
            (
                f"`{label}`: run.json is not valid JSON ({e.msg}, line {e.lineno})."
                " The run is skipped.",
            ),
            False,
        )
    if not isinstance(meta, dict):
        return Run(run_dir, rel, {}, (f"`{label}`: run.json is not a JSON object.",), False)
    checked = run_json.validate(meta, reader="this dashboard")
    if checked.fatal is not None:
        return Run(run_dir, rel, meta, (f"`{label}`: {checked.fatal}",), False)
    meta, wrong = typed_meta(meta)
    problems = [f"`{label}`: {p}" for p in (*checked.problems, *wrong)]
    return Run(run_dir, rel, meta, tuple(problems), True)


# The run.json fields the dashboard reads, and the JSON type each must have when given (null
# is "not given"). `status`, `format` and `format_version` are `run_json.validate`'s.
META_TYPES: dict[str, type] = {
    "name": str,
    "run_id": str,
    "hostname": str,
    "created_at": str,
    "updated_at": str,
    "finished_at": str,
    "last_flushed_step": int,
    "pid": int,
    "segments": list,
    "compacted": list,
    "host": dict,
    "optimizer": dict,
    "config": dict,
    "model": dict,
    "recording": dict,
    "error": dict,
    "versions": dict,
}
OPTIMIZER_TYPES: dict[str, type] = {"name": str, "base": str, "hyperparameters": dict}
OPTIMIZER_TYPES |= {"sgg": dict, "shadow": dict}
TIMES = ("created_at", "updated_at", "finished_at")
JSON_TYPE_NAMES = {str: "text", int: "a whole number", list: "a list", dict: "an object"}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _fits(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _wrong(where: str, value: object, kind: type) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return (
        f"run.json's {where} is {shown} ({_json_type(value)}), not {JSON_TYPE_NAMES[kind]}; ignored"
    )


def typed_meta(meta: dict) -> tuple[dict, list[str]]:
    """`meta` with every field of the wrong type (or an impossible value) left out, as if not
    given (an object: empty), and a sentence naming each: an edited run.json is named, and the
    views never meet a status of 5."""
    out, problems = dict(meta), []
    for key, kind in META_TYPES.items():
        value = out.get(key)
        if value is None:
            continue
        if key == "optimizer" and isinstance(value, str):  # a bare name
            out[key] = {"name": value}
            problems.append("run.json's optimizer is text, not an object; read as its name")
            continue
        if not _fits(value, kind):
            problems.append(_wrong(key, value, kind))
            if kind is dict:
                out[key] = {}  # an object with nothing readable in it
            else:
                del out[key]
        elif key in TIMES and run_json.parse_time(value) is None:
            problems.append(f"run.json's {key} ({value[:40]!r}) is not a time; ignored")
            del out[key]
        elif key == "last_flushed_step" and value < 0:
            problems.append(f"run.json's last_flushed_step is negative ({value}); ignored")
            del out[key]
        elif key == "pid" and not 0 < value < 2**31:
            problems.append(f"run.json's pid ({value}) is not a process id; ignored")
            del out[key]
    if isinstance(out.get("segments"), list) and not all(
        isinstance(x, dict) for x in out["segments"]
    ):
        problems.append("run.json's segments are not all objects; ignored")
        del out["segments"]
    if isinstance(out.get("optimizer"), dict):
        opt = dict(out["optimizer"])
        for key, kind in OPTIMIZER_TYPES.items():
            if opt.get(key) is not None and not _fits(opt[key], kind):
                problems.append(_wrong(f"optimizer.{key}", opt[key], kind))
                del opt[key]
        out["optimizer"] = opt
    if out.get("status") is not None and not isinstance(out["status"], str):
        del out["status"]  # `validate` has named it ("unknown status 5")
    return out, problems


@dataclass
class Discovery:
    root: Path | None
    runs: list[Run]
    messages: list[str]


# Object-store listing (dashboard.store_runs) builds on this module, so it plugs itself in here
# when imported (dashboard/__init__ imports it) instead of being imported back from here.
_STORE_BACKEND: dict[str, Callable] = {}


def register_store_backend(*, discover: Callable, clear: Callable) -> None:
    """Called by `dashboard.store_runs`: how to discover runs under a store prefix, and how to
    clear its caches with the loader's."""
    _STORE_BACKEND.update(discover=discover, clear=clear)


def discover_runs(root: str | Path | storage.ObjectPath) -> Discovery:
    """Every directory under `root` that contains run.json (symlinked folders not followed);
    `root` may be an object store prefix (`s3://bucket/prefix`: `dashboard.store_runs`)."""
    if storage.is_uri(root) or storage.is_store(root):
        if "discover" not in _STORE_BACKEND:
            return Discovery(None, [], ["Object stores are read through dashboard.store_runs."])
        return _STORE_BACKEND["discover"](root)
    try:
        root_path = Path(root).expanduser().resolve()
    except (OSError, RuntimeError) as e:
        return Discovery(None, [], [f"Cannot open the folder `{root}` ({e})."])
    if not root_path.exists():
        return Discovery(None, [], [f"The folder `{root}` does not exist."])
    if not root_path.is_dir():
        return Discovery(None, [], [f"`{root}` is not a folder."])
    runs: list[Run] = []
    messages: list[str] = []
    walk = os.walk(root_path, followlinks=False)
    for scanned, (dirpath, dirnames, filenames) in enumerate(walk, start=1):
        if scanned > MAX_DIRS_SCANNED:
            messages.append(
                f"Stopped looking after {MAX_DIRS_SCANNED} folders; choose a narrower folder."
            )
            break
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if schema.RUN_JSON in filenames:
            rel = here.relative_to(root_path).as_posix()
            rel = "" if rel == "." else rel
            run = _cached_run_json(here / schema.RUN_JSON, root_path, rel)
            runs.append(with_damage(run, root_path))
            dirnames[:] = [d for d in dirnames if d != schema.TABLES_DIR]
    # -- foreign runs (TensorBoard, W&B, MLflow: dashboard/foreign, issue 12) --
    from dashboard import foreign

    found = foreign.discover(root_path)
    runs += [Run(r.path, r.rel, r.meta, r.problems, r.readable) for r in found.runs]
    messages += found.messages
    # -- end foreign runs --
    runs.sort(key=lambda r: r.rel)
    if not runs:
        messages.append(f"No runs found under `{root}` (a run is a folder containing run.json).")
    return Discovery(root_path, runs, messages)


_RUN_JSON_CACHE: dict[tuple, Run] = {}


def _cached_run_json(path: Path, root: Path, rel: str) -> Run:
    try:
        st = path.stat()
        key = (str(path), str(root), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _RUN_JSON_CACHE:
        return _RUN_JSON_CACHE[key]
    run = read_run_json(path, root, rel)
    if key is not None:
        if len(_RUN_JSON_CACHE) > 4096:
            _RUN_JSON_CACHE.clear()
        _RUN_JSON_CACHE[key] = run
    return run


# --------------------------------------------------------------------------- chunks


ChunkSig = tuple[str, int, int]  # (path, or an object's URI; size; mtime_ns)
STORE_THREADS = 16  # concurrent GETs of one table's chunks on an object store


def _on_store(sig: ChunkSig) -> bool:
    return "://" in sig[0]


def chunk_name(sig: ChunkSig) -> str:
    """The chunk's file name (its key's last part on a store)."""
    return sig[0].rsplit("/", 1)[-1] if _on_store(sig) else os.path.basename(sig[0])


def superseded(names: list[str]) -> set[str]:
    """The chunk files a compacted file replaces (`runformat.chunks.superseded`: left only by a
    crash in the middle of a compaction; reading them would duplicate rows)."""
    return chunks.superseded(names)


def list_chunks(run: Run, table: str, root: Path) -> tuple[list[ChunkSig], list[str]]:
    """The table's chunk files in write order, with their signatures; refused paths reported.
    A run on an object store answers from its discovery's listing."""
    if run.listing is not None:
        return list(run.listing.get(table, ())), []
    d = chunks.table_dir(run.path, table)
    if not d.is_dir():
        return [], []
    sigs: list[ChunkSig] = []
    messages: list[str] = []
    try:
        with os.scandir(d) as it:
            by_name = {e.name: e for e in it}
    except OSError as e:
        return [], [f"`{run.rel or run.name}`: cannot list {table} ({e})."]
    for name in chunks.live_chunks(list(by_name)):  # write order
        entry = by_name[name]
        try:
            if entry.is_symlink() and not is_within(Path(entry.path), root):
                messages.append(f"`{run.rel or run.name}`: {table}/{name} points outside; refused.")
                continue
            st = entry.stat()
        except OSError:
            continue  # removed meanwhile (compaction)
        sigs.append((entry.path, st.st_size, st.st_mtime_ns))
    return sigs, messages


def prefetch(jobs: list[tuple[Run, str, tuple[str, ...] | None]], root: Path) -> None:
    """Read several (run, table, columns) concurrently to warm the caches (Arrow releases the
    GIL while decoding); errors are left for the later, regular read to report. On a store the
    chunks are fetched ahead and this returns at once: the page works on the first runs while
    the others arrive."""
    from concurrent.futures import ThreadPoolExecutor

    on_store = [(run, table) for run, table, _ in jobs if run.listing is not None]
    if on_store:  # fetched ahead, whole (one GET each either way): each read waits for its own
        _fetch_ahead([(sig, t) for run, t in on_store for sig in listed_chunks(run, t, root)])
        jobs = [job for job in jobs if job[0].listing is None]
    if len(jobs) < 2:
        return
    with ThreadPoolExecutor(max_workers=min(4, len(jobs))) as ex:
        list(ex.map(lambda j: read_table(j[0], j[1], root, j[2]), jobs))


class _LRU:
    """A small thread-safe LRU keyed by hashable keys, bounded by a total cost."""

    def __init__(self, max_cost: float):
        self.max_cost = max_cost
        self.cost = 0.0
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key][0]
        return None

    def put(self, key, value, cost: float) -> None:
        with self.lock:
            if key in self.items:
                self.cost -= self.items.pop(key)[1]
            self.items[key] = (value, cost)
            self.cost += cost
            while self.cost > self.max_cost and len(self.items) > 1:
                _, (_, c) = self.items.popitem(last=False)
                self.cost -= c

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.cost = 0.0


_CHUNKS = _LRU(max_cost=2e9)  # bytes of Arrow data
_TABLES = _LRU(max_cost=2e9)  # bytes of pandas data
_STATS = {"chunk_reads": 0}
_DAMAGE: dict[ChunkSig, str] = {}  # damaged chunks met so far: the sentence naming each
_CUT_SHORT: dict[ChunkSig, str | None] = {}  # `integrity.cut_short` of each chunk looked at
_VERIFIED: dict[ChunkSig, None] = {}  # chunks read whole: every page's checksum matched
MAX_REMEMBERED = 200_000


def clear_caches() -> None:
    _CHUNKS.clear()
    _TABLES.clear()
    _RUN_JSON_CACHE.clear()
    _DAMAGE.clear()
    _CUT_SHORT.clear()
    _VERIFIED.clear()
    _CHECKING.clear()
    _LISTED.clear()
    if "clear" in _STORE_BACKEND:
        _STORE_BACKEND["clear"]()


def _remember(cache: dict, key, value) -> None:
    if len(cache) > MAX_REMEMBERED:
        cache.clear()
    cache[key] = value


def _damaged(sig: ChunkSig, table: str, reason: str) -> str:
    """The sentence naming a damaged chunk (remembered: listing and reading say it alike)."""
    known = _DAMAGE.get(sig)
    if known is None:
        what = integrity.held(sig[0])
        known = integrity.damage_sentence(table, chunk_name(sig), reason, what)
        _remember(_DAMAGE, sig, known)
    return known


def known_damage(sig: ChunkSig, table: str) -> str | None:
    """The damage known of one chunk without decoding it: a read found it earlier, or the file
    is cut short (its last bytes, one small read per file version; on a store, the first read
    of the object says it)."""
    if sig in _DAMAGE:
        return _DAMAGE[sig]
    if _on_store(sig):
        return None
    if sig not in _CUT_SHORT:
        _remember(_CUT_SHORT, sig, integrity.cut_short(sig[0]))
    reason = _CUT_SHORT[sig]
    return None if reason is None else _damaged(sig, table, reason)


_LISTED: dict[str, tuple[int, list[ChunkSig]]] = {}  # table folder: (its mtime, its chunks)


def listed_chunks(run: Run, table: str, root: Path) -> list[ChunkSig]:
    """`list_chunks`, kept while the table's folder is unchanged (a chunk written, replaced or
    removed changes it): listing every run at every page run costs one stat per table."""
    if run.listing is not None:
        return list(run.listing.get(table, ()))
    d = chunks.table_dir(run.path, table)
    try:
        mtime = d.stat().st_mtime_ns
    except OSError:
        return []
    hit = _LISTED.get(str(d))
    if hit is not None and hit[0] == mtime:
        return hit[1]
    sigs = list_chunks(run, table, root)[0]
    _remember(_LISTED, str(d), (mtime, sigs))
    return sigs


def chunk_damage(run: Run, root: Path) -> tuple[str, ...]:
    """Sentences naming every damaged chunk of `run` known at listing time (`known_damage`,
    `damage_found`), whatever table it belongs to, each prefixed with the run like every
    loader message."""
    if not run.readable or run.meta.get("source"):
        return ()
    label = run.rel or run.name
    out = []
    for table in TABLES:
        for sig in listed_chunks(run, table, root):
            sentence = known_damage(sig, table)
            if sentence is not None:
                out.append(f"`{label}`: {sentence}")
    return tuple(dict.fromkeys([*out, *damage_found(run)]))


def damage_found(run: Run) -> list[str]:
    """The damage reads have found in `run`'s chunks so far (files still as they were), each
    prefixed with the run: a view names what another view's read found."""
    on_store = run.listing is not None
    tables_dir = str(run.path / schema.TABLES_DIR) + ("/" if on_store else os.sep)
    listed = {s for sigs in run.listing.values() for s in sigs} if on_store else None
    out = []
    for sig, sentence in list(_DAMAGE.items()):
        if sig[0].startswith(tables_dir) and _unchanged(sig, listed):
            out.append(f"`{run.rel or run.name}`: {sentence}")
    return out


def _unchanged(sig: ChunkSig, listed: set[ChunkSig] | None = None) -> bool:
    """Whether the chunk is still as it was (on a store: still in the run's listing)."""
    if listed is not None:
        return sig in listed
    try:
        st = os.stat(sig[0])
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == sig[1:]


def verify_runs(runs: list[Run], root: Path) -> tuple[int, int]:
    """Check whole, once, the chunks of `runs` that no read has checked yet (page checksums in
    every column, also those no view reads); damage found is named by every later read of the
    run and wherever it is listed. The `steps` and `evals` chunks are read now, whole: the
    views read them next and find them decoded. The other tables' chunks are checked in the
    background (`integrity.verify_chunk`, nothing kept but the verdict), so that a page never
    waits for columns no view on it reads; an open page redraws when they are done (app.watch).
    Returns (chunks checked so far, chunks in all)."""
    todo: list[tuple[ChunkSig, str]] = []
    total = 0
    for run in runs:
        if not run.readable or run.meta.get("source"):
            continue
        for table in TABLES:
            for sig in listed_chunks(run, table, root):
                total += 1
                if sig not in _VERIFIED and known_damage(sig, table) is None:
                    todo.append((sig, table))
    # First what every view reads next, kept decoded (the views then read nothing again): on
    # disk all runs' at once, one multi-threaded scan; on a store fetched ahead, run by run,
    # side by side, so that the page works on the first runs while the others arrive.
    keep = [(sig, t) for sig, t in todo if t in KEEP_VERIFIED]
    if keep and _on_store(keep[0][0]):
        _fetch_ahead(keep)
    else:
        for table in KEEP_VERIFIED:
            _read_chunks([sig for sig, t in keep if t == table], table)
    rest = [
        (sig, t)
        for sig, t in todo
        if t not in KEEP_VERIFIED and sig not in _VERIFIED and sig not in _DAMAGE
    ]
    _check_later(rest)
    return total - len(rest), total


KEEP_VERIFIED = ("steps", "evals")  # every view reads these next: read first, and kept
CHECK_THREADS = 2  # background checks: enough to keep a store busy, not a page's cores
CHECK_PATIENCE_S = 30.0  # the longest a check waits for pages being drawn
_CHECKING: dict[ChunkSig, None] = {}  # chunks waiting for (or in) the background check
_CHECKER: list = []  # the background checks' thread pool, made at first use
_DRAWING = [0]  # pages being drawn now: background checks wait for them (`drawing`)
_IDLE = threading.Condition()


@contextlib.contextmanager
def drawing():
    """While a page is drawn, background checks wait: they would take the cores, the disk and
    the store's requests that the page's own reads need (app.main)."""
    with _IDLE:
        _DRAWING[0] += 1
    try:
        yield
    finally:
        with _IDLE:
            _DRAWING[0] -= 1
            _IDLE.notify_all()


def _pool(holder: list, threads: int, name: str):
    """The process's thread pool kept in `holder`, made at its first use (pages that never need
    it start no threads)."""
    if not holder:
        from concurrent.futures import ThreadPoolExecutor

        holder.append(ThreadPoolExecutor(threads, thread_name_prefix=name))
    return holder[0]


def _check_later(jobs: list[tuple[ChunkSig, str]]) -> None:
    """Queue chunks for the background check (each once, however many pages ask)."""
    new = [(sig, table) for sig, table in jobs if sig not in _CHECKING]
    if not new:
        return
    pool = _pool(_CHECKER, CHECK_THREADS, "sgg-check")
    for sig, table in new:
        _CHECKING[sig] = None
        pool.submit(_check_queued, sig, table)


def _check_queued(sig: ChunkSig, table: str) -> None:
    try:
        with _IDLE:
            _IDLE.wait_for(lambda: _DRAWING[0] == 0, timeout=CHECK_PATIENCE_S)
        if sig not in _VERIFIED and sig not in _DAMAGE:
            _verify_chunk(sig, table)
    finally:
        _CHECKING.pop(sig, None)


_INFLIGHT: dict[ChunkSig, Future] = {}  # store chunks being fetched ahead: reads wait for them
_FETCHER: list = []  # the fetch-ahead thread pool, made at first use


def _fetch_ahead(jobs: list[tuple[ChunkSig, str]]) -> None:
    """Start reading whole, in this order, chunks of a store that a page reads next; a read of
    one of them waits for its fetch instead of sending its own requests."""
    pool = _pool(_FETCHER, STORE_THREADS, "sgg-fetch")
    for sig, table in jobs:
        if sig in _INFLIGHT or sig in _DAMAGE or _cached_chunk(sig, None) is not None:
            continue
        future = pool.submit(_read_chunk, sig, table)
        _INFLIGHT[sig] = future
        future.add_done_callback(lambda _, sig=sig: _INFLIGHT.pop(sig, None))


def _await_fetches(sigs: list[ChunkSig]) -> None:
    """Wait for the fetches of `sigs` still under way (a failed one is left to the caller's own
    read, which reports it as any read does)."""
    for sig in sigs:
        future = _INFLIGHT.get(sig)
        if future is not None:
            future.exception()


def checks_pending() -> int:
    """How many chunks still wait for their background check."""
    return len(_CHECKING)


def wait_for_checks(timeout_s: float = 60.0) -> bool:
    """Wait until the background checks and fetches started so far are done (a report, a
    test); whether they are."""
    end = time.monotonic() + timeout_s
    while (_CHECKING or _INFLIGHT) and time.monotonic() < end:
        time.sleep(0.01)
    return not (_CHECKING or _INFLIGHT)


def _verify_chunk(sig: ChunkSig, table: str) -> None:
    """Check one chunk whole (`integrity.verify_chunk`: nothing kept but the verdict)."""
    try:
        integrity.verify_chunk(sig[0], table, size=sig[1])
    except integrity.DamagedChunk as e:
        _damaged(sig, table, e.reason)
        return
    except Exception:
        return  # gone meanwhile: not damage
    _remember(_VERIFIED, sig, None)


def _cached_chunk(sig: ChunkSig, columns: tuple[str, ...] | None) -> pa.Table | None:
    """The chunk from the cache: read with these `columns`, or read whole (then projected)."""
    hit = _CHUNKS.get((sig, columns))
    if hit is None and columns is not None:
        whole = _CHUNKS.get((sig, None))
        if whole is not None:
            hit = whole.select([c for c in columns if c in whole.column_names])
    return hit


def with_damage(run: Run, root: Path) -> Run:
    """`run` with its damaged chunks (`chunk_damage`) among its problems and in `damage`."""
    damage = chunk_damage(run, root)
    if damage == run.damage:
        return run
    kept = tuple(p for p in run.problems if p not in run.damage)
    return dataclasses.replace(run, problems=(*kept, *damage), damage=damage)


def chunk_reads() -> int:
    """How many chunk files were actually read from disk (for tests of the live refresh)."""
    return _STATS["chunk_reads"]


def _read_chunk(
    sig: ChunkSig, table: str, columns: tuple[str, ...] | None = None
) -> pa.Table | str:
    """The chunk (only `columns` when given) as an Arrow table, page checksums verified; or the
    sentence naming its damage (remembered: a damaged file is not re-read at every refresh), or
    why it could not be read now."""
    hit = _cached_chunk(sig, columns)
    if hit is not None:
        return hit
    known = _DAMAGE.get(sig)
    if known is not None:
        return known
    _STATS["chunk_reads"] += 1
    try:
        t = integrity.read_chunk(sig[0], table, columns, size=sig[1])
    except integrity.DamagedChunk as e:
        return _damaged(sig, table, e.reason)
    except Exception as e:  # gone (compaction) or not allowed: not damage, said as it is
        return f"{table} chunk {chunk_name(sig)} could not be read ({type(e).__name__}: {e})"
    if columns is None:  # every page read: verified
        _remember(_VERIFIED, sig, None)
    _CHUNKS.put((sig, columns), t, float(t.nbytes))
    return t


def _conform(t: pa.Table, table: str, columns: tuple[str, ...] | None = None) -> pa.Table:
    """Cast known columns to the contract's types and add missing ones as nulls."""
    expected = EXPECTED.get(table, {})
    if columns is not None:
        expected = {k: v for k, v in expected.items() if k in columns}
    cols, names = [], []
    for name, typ in expected.items():
        if name in t.column_names:
            col = t.column(name)
            if col.type != typ:
                try:
                    col = col.cast(typ, safe=False)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    col = pa.nulls(len(t), typ)
        else:
            col = pa.nulls(len(t), typ)
        cols.append(col)
        names.append(name)
    for name in t.column_names:
        if name not in expected:
            cols.append(t.column(name))
            names.append(name)
    return pa.Table.from_arrays(cols, names=names)


BULK_MIN_CHUNKS = 8  # from this many unread chunks on, read them in one multi-threaded scan


def _read_chunks(
    sigs: list[ChunkSig], table: str, columns: tuple[str, ...] | None = None
) -> list[pa.Table | str]:
    """Every chunk (cached or read now). Many unread chunks are read together by one
    multi-threaded dataset scan (far less per-file overhead) and split back into chunks; if
    that scan fails (a damaged chunk) they are read one by one so the others still load."""
    _await_fetches(sigs)
    missing = [s for s in sigs if _cached_chunk(s, columns) is None and s not in _DAMAGE]
    if len(missing) > 1 and _on_store(missing[0]):  # one GET each, side by side
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(STORE_THREADS, len(missing))) as ex:
            list(ex.map(lambda s: _read_chunk(s, table, columns), missing))
    elif len(missing) >= BULK_MIN_CHUNKS:
        with contextlib.suppress(Exception):  # per-file reads below report which is bad
            _bulk_read(missing, table, columns)
    return [_read_chunk(s, table, columns) for s in sigs]


def _bulk_read(sigs: list[ChunkSig], table: str, columns: tuple[str, ...] | None) -> None:
    import pyarrow.dataset as ds

    paths = [s[0] for s in sigs]
    dataset = ds.dataset(paths, format=integrity.scan_format())
    names = [n for n in dataset.schema.names if columns is None or n in columns]
    t = dataset.to_table(columns=[*names, "__fragment_index"], use_threads=True)
    # a chunk whose own columns differ (a renamed column) is left to the per-file read
    odd = {
        f.path
        for f in dataset.get_fragments()
        if f.physical_schema.names != dataset.schema.names
        or integrity.unexpected_columns(table, f.physical_schema.names)
    }
    codes = t.column("__fragment_index").to_numpy()  # position in dataset.files
    files = dataset.files
    t = t.drop_columns(["__fragment_index"])
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64)
    ends = np.concatenate([bounds, [codes.size]]).astype(np.int64)
    pieces: dict[str, list[pa.Table]] = {}
    for a, b in zip(starts, ends, strict=True):
        if b > a:
            pieces.setdefault(files[int(codes[a])], []).append(t.slice(int(a), int(b - a)))
    for sig in sigs:
        parts = pieces.get(sig[0])
        if parts is None or sig[0] in odd:  # an empty file or odd columns: read it alone
            continue
        chunk = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        _STATS["chunk_reads"] += 1
        if columns is None:  # every page read: verified
            _remember(_VERIFIED, sig, None)
        _CHUNKS.put((sig, columns), chunk, float(chunk.nbytes))


@dataclass
class TableResult:
    df: pd.DataFrame | None  # None: not recorded (no chunks) or nothing readable
    messages: list[str]
    signature: tuple  # changes whenever a chunk is added, replaced or removed
    n_chunks: int = 0


def read_table(
    run: Run, table: str, root: Path, columns: tuple[str, ...] | None = None
) -> TableResult:
    """One table of one run as a DataFrame sorted by step, from all readable chunks; only
    `columns` (plus the step) when given: reading fewer columns is much faster. Its messages
    name what was left out, and every damaged chunk of the run known so far (`Run.damage`,
    `damage_found`): whichever view reads, it names all of it."""
    if not run.readable:
        return TableResult(None, [], ())
    if run.meta.get("source"):  # a foreign run (dashboard/foreign, issue 12)
        from dashboard import foreign

        df, msgs, sig = foreign.read_table(run.meta, table, columns)
        return TableResult(df, msgs, sig, 0)
    if columns is not None:
        columns = tuple(dict.fromkeys(("step", *columns)))
    sigs, messages = list_chunks(run, table, root)
    key = (str(run.path), table, tuple(sigs), columns)
    hit = _TABLES.get(key)
    if hit is not None:
        df, msgs = hit
        return TableResult(
            df, _said(messages, msgs, run.damage, damage_found(run)), key[2], len(sigs)
        )
    parts, msgs = [], []
    conformed_schema = None  # chunks already in this schema are used as they are
    for sig, t in zip(sigs, _read_chunks(sigs, table, columns), strict=True):
        if isinstance(t, str):  # damaged (or gone): left out, and said
            msgs.append(f"`{run.rel or run.name}`: {t}")
            continue
        if conformed_schema is not None and t.schema.equals(conformed_schema):
            parts.append(t)
            continue
        try:
            c = _conform(t, table, columns)
            if c.schema.equals(t.schema):
                conformed_schema = t.schema
            parts.append(c)
        except Exception as e:
            msgs.append(
                f"`{run.rel or run.name}`: chunk {table}/{chunk_name(sig)} has an "
                f"unexpected layout and was skipped ({type(e).__name__})."
            )
    df = None
    if parts:
        try:
            combined = pa.concat_tables(parts, promote_options="permissive")
            df = combined.to_pandas()
            df = _tidy(df, table)
            if table == "steps":  # pandas reads a null loss (not logged) as NaN too
                note_nonfinite_loss(df, combined)
        except Exception as e:
            msgs.append(f"`{run.rel or run.name}`: could not combine {table} ({e}).")
            df = None
    cost = float(df.memory_usage(deep=False).sum()) if df is not None else 100.0
    _TABLES.put(key, (df, msgs), cost)
    return TableResult(df, _said(messages, msgs, run.damage, damage_found(run)), key[2], len(sigs))


def _said(*groups) -> list[str]:
    """The messages of a read: its own, then the damage of the run's other tables (so each
    view names it), each once."""
    return list(dict.fromkeys(m for g in groups for m in g))


def _tidy(df: pd.DataFrame, table: str) -> pd.DataFrame:
    if "step" not in df or df.empty:
        return df
    step = df["step"].to_numpy()
    if table in schema.ROW_KEYS:
        key = [c for c in schema.ROW_KEYS[table] if c in df]
        if len(step) > 1 and not bool(np.all(np.diff(step) > 0)):
            df = df.sort_values("step", kind="stable").drop_duplicates(key, keep="last")
    elif len(step) > 1 and not bool(np.all(np.diff(step) >= 0)):
        df = df.sort_values("step", kind="stable")
    return df.reset_index(drop=True)


def run_signature(run: Run, root: Path, tables=TABLES) -> tuple:
    """A cheap fingerprint of everything on disk for `run` (names, sizes, mtimes)."""
    sig = [run.meta.get("updated_at"), run.meta.get("status")]
    for t in tables:
        sig.append(tuple(list_chunks(run, t, root)[0]))
    return tuple(sig)
