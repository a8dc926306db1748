"""Where the registry's objects live: a local directory or an S3 bucket, behind one small interface.

:class:`models.registry.Registry` holds all the rules (numbering, gates, aliases, rollback) and
talks to storage only through :class:`RegistryStore`; this module has the two implementations:

* :class:`LocalStore` — a directory. Changes are serialised by ``flock`` on ``<name>/.lock``;
  small files are replaced atomically (temporary file + rename); a version is published by
  renaming a complete staging directory into place.
* :class:`S3Store` — ``s3://bucket/prefix`` on AWS S3 or any S3-compatible server (endpoint from
  ``endpoint_url``, else ``$AWS_ENDPOINT_URL``; credentials from the standard AWS chain). There
  is no lock: small objects are replaced with conditional PUTs (``If-Match: <ETag>``, and
  ``If-None-Match: *`` to create), so of two writers that read the same state one wins and the
  other gets :class:`WriteConflict` and retries on fresh state. Version files are created with
  ``If-None-Match: *`` as well, so a stored version can never be overwritten.

Keys are ``/``-separated paths relative to the registry root (``intent/v3/artifact.json``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlparse

from callintent.errors import UserError
from models.checksums import MANIFEST

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

logger = logging.getLogger(__name__)

ENV_CACHE = "CALLINTENT_REGISTRY_CACHE"
LOCK_FILE = ".lock"
HISTORY_FILE = "history.jsonl"
HISTORY_DIR = "history"


class RegistryError(UserError):
    """A registry reference that does not exist, a refused promotion, a bad name, an unreachable store."""


class WriteConflict(Exception):
    """A conditional write lost: the object changed, appeared or vanished since it was read."""


@dataclass(frozen=True)
class Blob:
    """A small object as read.

    Attributes:
        data: Its bytes.
        token: What a conditional write compares against: the ETag (S3) or the sha256 of the
            content (local).
    """

    data: bytes
    token: str


class RegistryStore(Protocol):
    """Storage operations the registry needs (see the module docstring for the two kinds)."""

    #: The registry root as the user wrote it, for messages (an absolute path or ``s3://…``).
    location: str
    #: True when versions must be downloaded to be used (object stores).
    remote: bool
    #: Where local copies of versions live: the root itself (local) or this registry's cache.
    local_root: Path

    def describe(self, key: str) -> str:
        """A key as a path or URL, for messages."""
        ...

    def read(self, key: str) -> Blob | None:
        """A small object, None if absent."""
        ...

    def write(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> None:
        """Replace an object whole, in one step; with ``if_match`` only if it still has that token,
        with ``if_absent`` only if it does not exist. Raises :class:`WriteConflict` otherwise."""
        ...

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the sub-directories (common prefixes) right under ``prefix`` ("" = the root)."""
        ...

    def is_dir(self, key: str) -> bool:
        """Whether anything is stored under ``key/``."""
        ...

    def staging_dir(self, parent: str) -> AbstractContextManager[Path]:
        """A not-yet-existing local path to assemble a new version in, cleaned up on exit."""
        ...

    def publish_dir(self, staged: Path, key: str) -> None:
        """Store a complete staged directory as ``key``; refuse (:class:`RegistryError`) if ``key`` exists."""
        ...

    def fetch_dir(self, key: str, dest: Path) -> None:
        """Copy everything under ``key/`` into the new directory ``dest``."""
        ...

    def add_history(self, name: str, seq: int, line: str) -> None:
        """Record one history event (JSON text); ``seq`` is its number, unique per model."""
        ...

    def read_history(self, name: str) -> list[tuple[str, str]]:
        """``(where, JSON text)`` of every history event of ``name``, oldest first."""
        ...

    def locked(self, name: str) -> AbstractContextManager[None]:
        """Serialise changes to ``name`` where the store can (local: flock; S3: conditional writes do it)."""
        ...


def open_store(root: str | Path, *, endpoint_url: str | None = None, cache_dir: str | Path | None = None
               ) -> RegistryStore:
    """The store for a registry root: ``s3://bucket[/prefix]`` or a local directory.

    Args:
        root: The registry root.
        endpoint_url: S3-compatible endpoint (``http://127.0.0.1:9000``); None = ``$AWS_ENDPOINT_URL``
            or AWS itself. Ignored for a local root.
        cache_dir: Where downloaded versions go; None = ``$CALLINTENT_REGISTRY_CACHE``, else
            ``$XDG_CACHE_HOME/callintent/registry`` (``~/.cache/callintent/registry``).
    """
    text = str(root)
    if text.startswith("s3://"):
        return S3Store(text, endpoint_url=endpoint_url, cache_dir=cache_dir)
    if "://" in text:
        raise RegistryError(f"registry {text!r}: only local directories and s3://bucket/prefix are supported")
    return LocalStore(Path(text))


def default_cache_dir() -> Path:
    """``$CALLINTENT_REGISTRY_CACHE``, else ``$XDG_CACHE_HOME/callintent/registry`` (``~/.cache/…``)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser().absolute()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "callintent" / "registry").absolute()


# ---------------------------------------------------------------------------------------------- local

class LocalStore:
    """A registry in a local directory (changes serialised by flock; see the module docstring)."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.location = str(self.root)
        self.local_root = self.root

    def describe(self, key: str) -> str:
        return str(self.root / key)

    def read(self, key: str) -> Blob | None:
        try:
            data = (self.root / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Blob(data, hashlib.sha256(data).hexdigest())

    def write(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> None:
        # Conditions are checked here and are race-free because every writer holds `locked(name)`.
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if if_match is not None:
            current = self.read(key)
            if current is None or current.token != if_match:
                raise WriteConflict(str(path))
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        if if_absent:
            try:
                os.link(tmp, path)  # fails if the path exists: create-only, like If-None-Match: *
            except FileExistsError:
                raise WriteConflict(str(path)) from None
            finally:
                tmp.unlink()
        else:
            os.replace(tmp, path)

    def list_dirs(self, prefix: str) -> list[str]:
        directory = self.root / prefix
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.is_dir())

    def is_dir(self, key: str) -> bool:
        return (self.root / key).is_dir()

    @contextlib.contextmanager
    def staging_dir(self, parent: str) -> Iterator[Path]:
        # Inside the registry (same filesystem), so publishing is one rename.
        (self.root / parent).mkdir(parents=True, exist_ok=True)
        staged = self.root / parent / f".incoming-{uuid.uuid4().hex}"
        try:
            yield staged
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)

    def publish_dir(self, staged: Path, key: str) -> None:
        dest = self.root / key
        if dest.exists():  # os.rename would also replace an empty directory
            raise RegistryError(f"{dest} already exists; registered versions are never overwritten")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, dest)

    def fetch_dir(self, key: str, dest: Path) -> None:
        shutil.copytree(self.root / key, dest)

    def add_history(self, name: str, seq: int, line: str) -> None:
        with open(self.root / name / HISTORY_FILE, "a", encoding="utf-8") as f:  # order: the flock
            f.write(line.rstrip("\n") + "\n")

    def read_history(self, name: str) -> list[tuple[str, str]]:
        path = self.root / name / HISTORY_FILE
        if not path.is_file():
            return []
        return [(f"{path}:{n}", line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if line.strip()]

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``<name>/.lock`` (released when the file closes)."""
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with open(model_dir / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


# ------------------------------------------------------------------------------------------------- S3

class S3Store:
    """A registry under ``s3://bucket/prefix`` (conditional writes, no lock; see the module docstring)."""

    remote = True

    def __init__(self, url: str, *, endpoint_url: str | None = None, cache_dir: str | Path | None = None) -> None:
        parsed = urlparse(url)
        self.bucket = parsed.netloc
        if not self.bucket:
            raise RegistryError(f"registry {url!r}: expected s3://bucket/prefix")
        self.prefix = parsed.path.strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        cache = Path(cache_dir).expanduser().absolute() if cache_dir else default_cache_dir()
        self.local_root = cache / self.bucket / self.prefix if self.prefix else cache / self.bucket
        self._client_instance: Any = None

    # -------------------------------------------------------------- plumbing
    @property
    def _client(self) -> Any:
        if self._client_instance is None:
            aws_env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
            self._client_instance = _s3_client(self.endpoint_url, aws_env, os.getpid())
        return self._client_instance

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def describe(self, key: str) -> str:
        return f"{self.location}/{key}"

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Turn botocore's failures into one readable :class:`RegistryError` line."""
        from botocore import exceptions as bex

        where = self.describe(key)
        endpoint = self.endpoint_url or "AWS S3"
        try:
            yield
        except (bex.NoCredentialsError, bex.PartialCredentialsError):
            raise RegistryError(f"{where}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                "or AWS_PROFILE)") from None
        except (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError,
                bex.ConnectionClosedError) as e:
            raise RegistryError(f"{where}: cannot reach the object store at {endpoint}: {e}") from None
        except bex.ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket":
                raise RegistryError(f"{where}: bucket {self.bucket!r} does not exist at {endpoint}") from None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                raise RegistryError(f"{where}: access denied by {endpoint} ({code}: "
                                    f"{error.get('Message', 'check the credentials')})") from None
            raise RegistryError(f"{where}: object store error {code}: {error.get('Message', e)}") from None
        except bex.BotoCoreError as e:  # bad endpoint URL, region config…
            raise RegistryError(f"{where}: object store client error: {e}") from None

    # -------------------------------------------------------------- objects
    def read(self, key: str) -> Blob | None:
        from botocore.exceptions import ClientError

        with self._errors(key):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            return Blob(response["Body"].read(), response["ETag"])

    def write(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> None:
        conditions: dict[str, str] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        self._put(key, data, conditions)

    def _put(self, key: str, body: bytes | BinaryIO, conditions: dict[str, str]) -> None:
        from botocore.exceptions import ClientError

        with self._errors(key):
            try:
                self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **conditions)
            except ClientError as e:
                # 412: the condition failed; 409: a concurrent conditional write won; 404: it vanished.
                if conditions and e.response.get("Error", {}).get("Code") in (
                        "PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"):
                    raise WriteConflict(self.describe(key)) from None
                raise

    def _list(self, prefix: str, *, delimiter: bool) -> Iterator[dict[str, Any]]:
        full = self._key(prefix).rstrip("/") + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = "/"
        with self._errors(prefix):
            for page in self._client.get_paginator("list_objects_v2").paginate(**kwargs):
                yield page

    def _keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix/``, relative to it."""
        start = len(self._key(prefix).rstrip("/")) + 1
        return [obj["Key"][start:] for page in self._list(prefix, delimiter=False) for obj in page.get("Contents", [])]

    def list_dirs(self, prefix: str) -> list[str]:
        names = []
        for page in self._list(prefix, delimiter=True):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(names)

    def is_dir(self, key: str) -> bool:
        with self._errors(key):
            response = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key) + "/", MaxKeys=1)
        return bool(response.get("KeyCount"))

    # -------------------------------------------------------------- directories
    @contextlib.contextmanager
    def staging_dir(self, parent: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="callintent-register-") as tmp:
            yield Path(tmp) / "version"

    def publish_dir(self, staged: Path, key: str) -> None:
        if self.is_dir(key):
            raise RegistryError(f"{self.describe(key)} already exists; registered versions are never overwritten")
        files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
        # The manifest goes last: a version without one is an interrupted upload, never used.
        files.sort(key=lambda rel: rel == MANIFEST)
        for rel in files:
            with open(staged / rel, "rb") as body:
                try:
                    self._put(f"{key}/{rel}", body, {"IfNoneMatch": "*"})
                except WriteConflict:
                    raise RegistryError(f"{self.describe(key)} is being written by someone else; registered "
                                        "versions are never overwritten") from None
        logger.info("uploaded %d files to %s", len(files), self.describe(key))

    def fetch_dir(self, key: str, dest: Path) -> None:
        rels = self._keys(key)
        if not rels:
            raise RegistryError(f"{self.describe(key)}: nothing stored there")
        for rel in rels:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._errors(f"{key}/{rel}"):
                self._client.download_file(self.bucket, self._key(f"{key}/{rel}"), str(target))

    # -------------------------------------------------------------- history
    def add_history(self, name: str, seq: int, line: str) -> None:
        # One object per event, numbered by the alias update that won it: no shared log to rewrite.
        try:
            self.write(f"{name}/{HISTORY_DIR}/{seq:08d}.json", line.encode("utf-8"), if_absent=True)
        except WriteConflict:
            raise RegistryError(f"{self.describe(f'{name}/{HISTORY_DIR}/{seq:08d}.json')} already exists: "
                                "the history and the alias object disagree") from None

    def read_history(self, name: str) -> list[tuple[str, str]]:
        out = []
        for rel in sorted(self._keys(f"{name}/{HISTORY_DIR}")):
            key = f"{name}/{HISTORY_DIR}/{rel}"
            blob = self.read(key)
            if blob is not None:
                out.append((self.describe(key), blob.data.decode("utf-8")))
        return out

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        yield  # conditional writes make every change safe without a lock


@functools.lru_cache(maxsize=8)
def _s3_client(endpoint_url: str | None, aws_env: tuple[tuple[str, str], ...], pid: int) -> Any:
    """One boto3 S3 client per endpoint, AWS environment and process (clients are thread-safe and
    slow to build).

    ``aws_env`` (the ``AWS_*`` variables) is part of the key because a session keeps the
    credentials it first found: a changed environment must get a new client. ``pid`` keeps a
    forked worker from sharing its parent's connection pool.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise RuntimeError("an s3:// registry requires boto3 (pip install boto3)") from e
    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
    # A session of its own: boto3's default one is shared process-wide and not safe across threads.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
