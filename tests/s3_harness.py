"""A real S3-compatible server on loopback for tests: moto's server mode (``moto[server]``).

``ThreadedMotoServer`` speaks the S3 REST API over HTTP on 127.0.0.1, with conditional writes
(``If-Match`` / ``If-None-Match``), so the registry runs against it exactly as against S3 or
MinIO: through boto3 and an endpoint URL. Other processes (service replicas) reach it too; give
them :meth:`S3Server.env`.

Use::

    with s3_server() as s3:
        bucket = s3.create_bucket()
        registry = Registry(f"s3://{bucket}/registry", endpoint_url=s3.endpoint_url)

or the fixtures: ``s3`` (one server per test session) and ``s3_env`` (a fresh bucket, and the AWS
variables set for this test, so ``Registry("s3://…")`` and subprocesses find the server).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

#: Credentials moto accepts (it checks none); real ones never reach a test.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
    """

    endpoint_url: str

    def env(self) -> dict[str, str]:
        """The AWS variables a process needs to use this server (endpoint, fake keys, region)."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self) -> Any:
        """A boto3 S3 client on this server (for setting up or tampering in tests)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name if none is given) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on a free loopback port for the duration of the block."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One S3-compatible server for the test session."""
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on :func:`s3`, with the AWS variables pointing at the server; returns the bucket."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):  # never the developer's ~/.aws
        monkeypatch.setenv(name, os.devnull)
    return s3.create_bucket()
