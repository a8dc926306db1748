"""A throwaway PostgreSQL server for the tests, and per-test databases on both call-log backends.

:func:`pg_server` (session fixture) runs ``initdb`` + ``pg_ctl start`` in a fresh temporary
folder: loopback only, a free port, the unix socket inside that folder, trust authentication,
``fsync=off`` (nothing here must survive a crash). PostgreSQL refuses to run as root, so as root
the cluster belongs to the ``postgres`` user (``runuser``). It is stopped at the end of the session.

The binaries are looked up on ``PATH`` and in ``/usr/lib/postgresql/*/bin`` (Debian). Only when
they are absent does a test that needs the server skip, saying so; ``.ci/run`` installs
``postgresql`` when they are missing, so CI always runs both backends.

``call_log_url`` (function fixture, parametrised ``sqlite`` / ``postgresql``) gives every test an
empty database: a new SQLite file, or a new PostgreSQL database on the session server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server_harness import free_port


@dataclass(frozen=True)
class PgServer:
    """A running throwaway cluster. Attributes: port, data_dir, bin_dir, options (``pg_ctl -o``), log."""

    port: int
    data_dir: Path
    bin_dir: Path
    options: str = ""
    log: Path | None = None

    def stop(self) -> None:
        """Stop the server (a database outage); :meth:`start` brings it back on the same port."""
        subprocess.run(_as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                                  "stop"]), check=True, capture_output=True)

    def start(self) -> None:
        started = subprocess.run(_as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", self.options,
                                            "-l", str(self.log), "-w", "-t", "60", "start"]),
                                 capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n"
                               f"{self.log.read_text() if self.log and self.log.exists() else ''}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def postgres_bin_dir() -> Path | None:
    """Folder holding ``initdb`` and ``pg_ctl``: on PATH, else the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2].split(".")[0]))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[PgServer]:
    """``initdb`` + ``pg_ctl start`` in a fresh temporary folder (loopback, a free port, trust auth)."""
    # Not under pytest's tmp folder: that one is private to root, and the cluster runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="callintent-pg-"))
    data_dir = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust",
                              "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    server = PgServer(port, data_dir, bin_dir, options, root / "server.log")
    server.start()
    try:
        yield server
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def require_postgres() -> Path:
    """The PostgreSQL binaries' folder, or skip (with the reason) where the server cannot exist."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                    "apt-get install postgresql (as .ci/run does)")
    return bin_dir


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with postgres_cluster(require_postgres()) as server:
        yield server


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def call_log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty call-log database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.db'}"
    return request.getfixturevalue("pg_server").create_database()
