"""A real S3 protocol server for the object-storage tests: moto's standalone server on
127.0.0.1 (a free port), started once per session, with the standard AWS environment pointing
at it (AWS_ENDPOINT_URL, AWS_REGION, test credentials), as a cluster job would have it.

Every test gets its own prefix in one bucket (`store`: the `s3://` URI of an empty prefix).
"""

from __future__ import annotations

import logging
import os
import uuid

import pytest

BUCKET = "sgg-runs"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server():
    """The server's endpoint URL; the AWS environment points at it for the whole session."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (*ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(ENV, AWS_ENDPOINT_URL=endpoint)
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir(BUCKET)
    try:
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def store(s3_server) -> str:
    """An empty prefix of its own: `s3://sgg-runs/<random>`."""
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
