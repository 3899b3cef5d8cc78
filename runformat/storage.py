"""Where a run lives: a local folder or an object store, behind one small set of operations.

`locate` is the one place that maps a location to what the writer and the loader use:

- a local path (the default) stays a `pathlib.Path`, and every operation below is the os call it
  always was (write a temp file, fsync, rename): local runs are unchanged and as fast;
- a URI, `s3://bucket/prefix/run` or `gs://bucket/prefix/run`, becomes an `ObjectPath` on a
  pyarrow filesystem (`pyarrow.fs.FileSystem.from_uri`). S3 takes its credentials, profile,
  region and endpoint from the standard AWS environment and config (`AWS_PROFILE`,
  `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` or
  `AWS_ENDPOINT_URL_S3` for MinIO, R2, Ceph or GCS's S3 API); GCS from Google's default
  credentials. A URI never carries credentials or an endpoint: one with a user, password or
  query is refused, and error messages never show the endpoint (`scrub`).

What an object store lacks, and what stands in for it:

- folders: a folder is a key prefix; it exists while an object lies under it, and nothing
  creates one (no marker objects are written);
- rename: a whole object is written by one request (`put`: pyarrow's delayed open sends one
  PUT up to its multipart threshold; a larger object is a multipart upload, which the store
  shows only once it is completed). A reader, or a job killed mid-write, sees the whole object
  or nothing: what `runformat.atomic` gets on disk from a temp file and a rename;
- a version: an object's (size, mtime) from the listing (`Stat`); S3's mtime has one-second
  resolution, so readers that cache by it re-read objects that may still change (run.json of a
  running run).

Needs pyarrow and the standard library only.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

SCHEMES = ("s3", "gs")  # object stores pyarrow's filesystem layer opens
WHOLE_READ_BYTES = 32 * 2**20  # objects up to this size are read by one GET, larger by ranges
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# the environment a filesystem is built from: a change makes a new one (tests, profiles)
ENVIRONMENT = (*ENDPOINT_VARIABLES, "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION")
ENVIRONMENT += ("AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS")


class Stat(NamedTuple):
    """An object's or file's version as a listing gives it."""

    size: int
    mtime_ns: int


class ObjectPath:
    """A file or folder on an object store: `scheme://bucket/key`. Offers the few `Path`
    methods the run's writers and readers use (`/`, `name`, `parent`, `exists`, `is_file`,
    `is_dir`, `read_bytes`, `read_text`, `open("rb")`), each one request or so, and never
    `__fspath__`: code that would open it as a local file fails instead of writing a folder
    named `s3:`."""

    __slots__ = ("key", "scheme")

    def __init__(self, scheme: str, key: str) -> None:
        self.scheme = scheme
        self.key = key.strip("/")  # "bucket/prefix/name"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.key}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and (self.scheme, self.key) == (
            other.scheme,
            other.key,
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.key))

    def __lt__(self, other: ObjectPath) -> bool:
        return (self.scheme, self.key) < (other.scheme, other.key)

    def __truediv__(self, name: str | os.PathLike[str]) -> ObjectPath:
        return ObjectPath(self.scheme, f"{self.key}/{os.fspath(name).strip('/')}")

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ObjectPath:
        head = self.key.rsplit("/", 1)[0] if "/" in self.key else self.key
        return ObjectPath(self.scheme, head)

    @property
    def bucket(self) -> str:
        return self.key.split("/", 1)[0]

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def relative_to(self, other: ObjectPath) -> str:
        """The "/"-separated key below `other` ("" for `other` itself); ValueError outside."""
        if self == other:
            return ""
        head = other.key + "/"
        if other.scheme != self.scheme or not self.key.startswith(head):
            raise ValueError(f"{self} is not under {other}")
        return self.key[len(head) :]

    def resolve(self, strict: bool = False) -> ObjectPath:
        return self  # no symlinks, no relative parts

    def expanduser(self) -> ObjectPath:
        return self

    @property
    def fs(self) -> pafs.FileSystem:
        return filesystem(self.scheme, self.bucket)

    def exists(self) -> bool:
        return exists(self)

    def is_file(self) -> bool:
        return is_file(self)

    def is_dir(self) -> bool:
        return is_dir(self)

    def read_bytes(self) -> bytes:
        return read_bytes(self)

    def read_text(self, encoding: str = "utf-8") -> str:
        return read_bytes(self).decode(encoding)

    def open(self, mode: str = "rb") -> io.BytesIO:
        """The object's bytes as a binary file (reading only: writes are `put`, whole)."""
        if mode not in ("r", "rb"):
            raise ValueError(f"an object is opened for reading only ('rb'), got {mode!r}")
        return io.BytesIO(read_bytes(self))


Where = Path | ObjectPath


class StorageError(OSError):
    """A failed operation on an object store, its message scrubbed of the endpoint (the
    object's URI is `filename`; callers name it in their own words)."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


# --------------------------------------------------------------------------- locating


def is_uri(location: object) -> bool:
    """Whether `location` is written as a URI (`scheme://...`), not a local path."""
    return isinstance(location, str) and "://" in location


def locate(location: str | os.PathLike[str] | ObjectPath) -> Where:
    """The one mapping from a run location to what writers and readers use: an `ObjectPath`
    for `s3://` and `gs://`, a `Path` for anything else (`file://` included). A ValueError
    names a URI that cannot be used: another scheme, no bucket, or credentials or an endpoint
    in it (they come from the environment, never from the URL)."""
    if isinstance(location, Path | ObjectPath):
        return location
    if not is_uri(location):
        return Path(location)
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    shown = f"{scheme}://{parts.hostname or ''}{parts.path}"
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"run location {shown}: credentials, an endpoint or options do not go in the URL "
            "(anything after '?' or before '@'); set them in the environment: AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL"
        )
    if scheme == "file":
        return Path(parts.path)
    if scheme not in SCHEMES:
        raise ValueError(
            f"run location {shown}: scheme {scheme!r} is not supported; use a local path, "
            f"{' or '.join(s + '://bucket/prefix' for s in SCHEMES)}"
        )
    if not parts.netloc:
        raise ValueError(f"run location {location!r} names no bucket ({scheme}://bucket/...)")
    return ObjectPath(scheme, f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/"))


def is_store(where: object) -> bool:
    return isinstance(where, ObjectPath)


_FILESYSTEMS: dict[tuple, pafs.FileSystem] = {}
_FS_LOCK = threading.Lock()


def filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    """pyarrow's filesystem for a bucket (one per bucket and environment, reused): S3 with
    delayed open, so an object of up to the multipart threshold is written by a single PUT."""
    env = tuple(os.environ.get(k) for k in ENVIRONMENT)
    key = (scheme, bucket, env)
    with _FS_LOCK:
        fs = _FILESYSTEMS.get(key)
        if fs is None:
            options = "?allow_delayed_open=true" if scheme == "s3" else ""
            try:
                fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}{options}")
            except (OSError, pa.ArrowException) as e:
                raise StorageError(5, scrub(str(e)), f"{scheme}://{bucket}") from e
            _FILESYSTEMS[key] = fs
    return fs


def scrub(text: str) -> str:
    """`text` without the endpoint (its URL and its host:port) or the access key id: what a
    message, a log line or run.json may show of an object store error."""
    for name in ENDPOINT_VARIABLES:
        url = os.environ.get(name)
        if not url:
            continue
        parts = urlsplit(url if "://" in url else f"http://{url}")
        for secret in (url, parts.netloc, parts.hostname):
            if secret:
                text = text.replace(secret, "<endpoint>")
    key_id = os.environ.get("AWS_ACCESS_KEY_ID")
    if key_id and len(key_id) >= 4:
        text = text.replace(key_id, "<access key>")
    return text


@contextlib.contextmanager
def _store_errors(where: ObjectPath) -> Iterator[None]:
    """pyarrow's errors as OSErrors naming the object (FileNotFoundError kept), scrubbed."""
    try:
        yield
    except FileNotFoundError as e:
        raise FileNotFoundError(2, f"no object {where}", str(where)) from e
    except StorageError:
        raise
    except (OSError, pa.ArrowException) as e:
        code = getattr(e, "errno", None) or 5
        raise StorageError(code, scrub(str(e)), str(where)) from e


# --------------------------------------------------------------------------- looking


def stat(where: Where) -> Stat | None:
    """Size and mtime of a file or object; None when there is none (or it is a folder)."""
    if not is_store(where):
        try:
            st = os.stat(where)
        except OSError:
            return None
        return Stat(st.st_size, st.st_mtime_ns) if not os.path.isdir(where) else None
    with _store_errors(where):
        info = where.fs.get_file_info(where.key)
    if info.type != pafs.FileType.File:
        return None
    return Stat(info.size, info.mtime_ns or 0)


def is_file(where: Where) -> bool:
    return stat(where) is not None if is_store(where) else Path(where).is_file()


def is_dir(where: Where) -> bool:
    """A local folder, or a prefix with at least one object under it."""
    if not is_store(where):
        return Path(where).is_dir()
    return bool(list_names(where))


def exists(where: Where) -> bool:
    if not is_store(where):
        return Path(where).exists()
    return is_file(where) or is_dir(where)


def list_names(where: Where) -> list[str]:
    """The names of what lies directly in `where` (files and folders; empty when nothing
    does): `os.listdir` on disk, one listing request on a store (more for over 1,000 names)."""
    if not is_store(where):
        try:
            return os.listdir(where)
        except (FileNotFoundError, NotADirectoryError):
            return []
    selector = pafs.FileSelector(where.key, recursive=False, allow_not_found=True)
    with _store_errors(where):
        return [i.base_name for i in where.fs.get_file_info(selector)]


def _info_stat(info: pafs.FileInfo) -> Stat | None:
    if info.type != pafs.FileType.File:
        return None
    return Stat(info.size, info.mtime_ns or 0)


def bucket_exists(where: ObjectPath) -> bool:
    """Whether the bucket of `where` exists (and these credentials may see it)."""
    with _store_errors(where):
        return where.fs.get_file_info(where.bucket).type != pafs.FileType.NotFound


def walk(where: ObjectPath, limit: int | None = None) -> tuple[list[tuple[str, Stat]], bool]:
    """Every object below a store prefix as ("/"-separated key below it, Stat), and whether
    the listing stopped at `limit` objects. One paginated listing (1,000 keys a request)."""
    selector = pafs.FileSelector(where.key, recursive=True, allow_not_found=True)
    with _store_errors(where):
        infos = where.fs.get_file_info(selector)
    head = len(where.key) + 1
    out = [(i.path[head:], s) for i in infos if (s := _info_stat(i)) is not None]
    if limit is not None and len(out) > limit:
        return out[:limit], True
    return out, False


# --------------------------------------------------------------------------- reading


def read_bytes(where: Where, max_bytes: int | None = None) -> bytes:
    """The whole file or object; ValueError when it is larger than `max_bytes`."""
    if not is_store(where):
        path = Path(where)
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise ValueError(f"{path} is larger than {max_bytes:,} bytes")
        return path.read_bytes()
    with _store_errors(where), where.fs.open_input_stream(where.key) as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{where} is larger than {max_bytes:,} bytes")
    return data


def read_tail(where: Where, n: int, size: int | None = None) -> tuple[int, bytes, bytes]:
    """(size, the first 4 bytes, the last `n` bytes) of a file or object: what tells a whole
    Parquet file from a cut-short one without reading it."""
    if not is_store(where):
        with open(where, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4)
            f.seek(max(0, size - n))
            return size, head, f.read(n)
    with _store_errors(where), where.fs.open_input_file(where.key) as f:
        size = f.size() if size is None else size
        return size, f.read_at(4, 0), f.read_at(min(n, size), max(0, size - n))


def open_input(where: Where | str, size: int | None = None):
    """What pyarrow's readers (`pq.ParquetFile`, `read_metadata`) open: a local path as it is
    (pyarrow reads it itself, as before); an object up to `WHOLE_READ_BYTES` read whole by one
    GET (a Parquet reader would otherwise ask for its footer, then its pages), a larger one as
    a random-access file (ranged GETs of what is read)."""
    if isinstance(where, str) and is_uri(where):
        where = locate(where)
    if not is_store(where):
        return where
    if size is None or size <= WHOLE_READ_BYTES:
        data = read_bytes(where)
        if size is None or len(data) <= WHOLE_READ_BYTES:
            return pa.BufferReader(data)
    with _store_errors(where):
        return where.fs.open_input_file(where.key)


# --------------------------------------------------------------------------- writing


def put(where: ObjectPath, data: bytes) -> None:
    """Write a whole object (the caller has every byte already: a failed request leaves the
    previous object, or none, never a part)."""
    with _store_errors(where):
        stream = where.fs.open_output_stream(where.key)
        try:
            stream.write(data)
        finally:
            stream.close()  # sends the PUT (or completes the multipart upload)


def make_dirs(where: Where) -> None:
    """A local folder and its parents; nothing on a store (a prefix needs no object)."""
    if not is_store(where):
        Path(where).mkdir(parents=True, exist_ok=True)


def delete(where: Where) -> None:
    """Remove a file or object; one that is already gone is fine."""
    if not is_store(where):
        with contextlib.suppress(FileNotFoundError):
            Path(where).unlink()
        return
    with contextlib.suppress(FileNotFoundError), _store_errors(where):
        where.fs.delete_file(where.key)


def delete_tree(where: Where) -> None:
    """Remove a folder (every object under a prefix) and all it holds."""
    if not is_store(where):
        path = Path(where)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return
    with contextlib.suppress(FileNotFoundError), _store_errors(where):
        where.fs.delete_dir(where.key)
