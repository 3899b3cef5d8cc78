"""Any run location is a path or a URI (`runformat.storage.locate`): what maps to the local disk,
what to an object store, and what is refused, without a secret in any message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runformat import storage
from sgg_train import config as C

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("location", "want"),
    [
        ("runs/a", Path("runs/a")),
        (Path("/tmp/x"), Path("/tmp/x")),
        ("file:///tmp/runs/a", Path("/tmp/runs/a")),
        ("s3://bucket/prefix/run", storage.ObjectPath("s3", "bucket/prefix/run")),
        ("s3://bucket/prefix/run/", storage.ObjectPath("s3", "bucket/prefix/run")),
        ("gs://bucket/run", storage.ObjectPath("gs", "bucket/run")),
        ("s3://bucket", storage.ObjectPath("s3", "bucket")),
    ],
)
def test_locate_maps_paths_to_the_disk_and_uris_to_the_store(location, want):
    got = storage.locate(location)
    assert got == want and type(got) is type(want)


def test_an_object_path_acts_like_a_path_where_the_run_format_needs_it():
    run = storage.locate("s3://bucket/prefix/run")
    chunk = run / "tables" / "steps" / "part-000-000001.parquet"
    assert str(chunk) == "s3://bucket/prefix/run/tables/steps/part-000-000001.parquet"
    assert chunk.name == "part-000-000001.parquet"
    assert chunk.parent.parent == run / "tables"
    assert chunk.relative_to(run) == "tables/steps/part-000-000001.parquet"
    assert run.resolve() is run and run.bucket == "bucket"
    with pytest.raises(TypeError):
        os.fspath(run)  # never opened as a local file: no folder named "s3:"


@pytest.mark.parametrize(
    ("location", "words"),
    [
        (f"s3://AKIAEXAMPLE:{SECRET}@bucket/run", "credentials"),
        (f"s3://bucket/run?secret_key={SECRET}", "environment"),
        ("s3://bucket/run?endpoint_override=http://10.0.0.1:9000", "AWS_ENDPOINT_URL"),
        ("ftp://host/run", "not supported"),
        ("s3:///run", "no bucket"),
    ],
)
def test_bad_uris_are_refused_without_echoing_a_secret(location, words):
    with pytest.raises(ValueError, match=words) as err:
        storage.locate(location)
    assert SECRET not in str(err.value) and "10.0.0.1" not in str(err.value)


def test_sgg_train_out_is_a_uri_not_a_local_folder_named_s3():
    cfg = C.TrainConfig(out="s3://bucket/sweep/sgg-run")
    assert cfg.run_dir == storage.ObjectPath("s3", "bucket/sweep/sgg-run")
    assert cfg.run_dir.name == "sgg-run"
    assert C.TrainConfig(out="runs/x").run_dir == Path("runs/x")  # local: unchanged
    with pytest.raises(ValueError, match=r"^out: ") as err:
        C.TrainConfig(out=f"s3://AKIAEXAMPLE:{SECRET}@bucket/run")
    assert SECRET not in str(err.value)


def test_messages_never_show_the_endpoint_or_the_key_id(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
    text = (
        "AWS Error NETWORK_CONNECTION: Failed to connect to minio.internal:9000 "
        "(http://minio.internal:9000) as AKIAEXAMPLEKEYID"
    )
    clean = storage.scrub(text)
    assert "minio.internal" not in clean and "AKIAEXAMPLEKEYID" not in clean
    assert "<endpoint>" in clean
