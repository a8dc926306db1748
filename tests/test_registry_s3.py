"""The registry on an object store (a real S3-compatible server on loopback) and, for the shared
core, on a local directory: one Registry, two stores.

Covers register / resolve / promote / rollback / history, immutable versions, the checksum
manifest and the verified download cache, concurrent promotions (no lost update), the CLI, and
the one-line errors for a missing bucket, missing credentials and an unreachable endpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from model_fixtures import build_tiny_artifact

from callintent.cli import main
from callintent.errors import UserError
from models.artifact import META, ONNX_INT8, ArtifactMeta
from models.checksums import MANIFEST, file_sha256, parse_manifest
from models.predictor import IntentPredictor
from models.registry import Registry, RegistryError
from tests.s3_harness import s3, s3_env  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny") / "artifact",
                               metrics={"validation": {"macro_f1": 0.8125, "accuracy": 0.9}})


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path) -> Registry:
    """The same tests on both stores."""
    if request.param == "local":
        return Registry(tmp_path / "registry")
    bucket = request.getfixturevalue("s3_env")
    return Registry(f"s3://{bucket}/team/registry", cache_dir=tmp_path / "cache")


@pytest.fixture
def s3_registry(s3_env, tmp_path) -> Registry:
    return Registry(f"s3://{s3_env}/registry", cache_dir=tmp_path / "cache")


def write_gate(registry: Registry, ref: str, passed: bool, compared_to: str | None = None,
               *, in_copy: bool = True) -> None:
    """What `callintent evaluate` does: write evaluation/gate.json beside the resolved copy
    (``in_copy``; else in a scratch folder, sparing the download), and record it."""
    with tempfile.TemporaryDirectory() as scratch:
        evaluation = (registry.resolve(ref) if in_copy else Path(scratch)) / "evaluation"
        evaluation.mkdir(exist_ok=True)
        (evaluation / "gate.json").write_text(json.dumps({"passed": passed, "reasons": ["checked"],
                                                          "compared_to": compared_to}))
        registry.record_evaluation(ref, evaluation)


# ------------------------------------------------------------------ the core, on both stores

def test_register_resolve_promote_rollback_history(registry, artifact):
    assert registry.register(artifact) == "intent/v1"
    assert registry.register(artifact) == "intent/v2"
    assert registry.aliases() == {"candidate": "v2"}
    path = registry.resolve("candidate")
    assert path.name == "v2" and path.is_dir()
    assert (ArtifactMeta.load(path).name, ArtifactMeta.load(path).version) == ("intent", "v2")
    assert IntentPredictor.load(path).predict(["hi"])[0].model == "intent/v2"

    with pytest.raises(RegistryError, match="has not been evaluated"):
        registry.promote("v1")
    write_gate(registry, "v1", True)
    assert registry.show("v1").gate.passed is True  # read back from the store, not the local copy
    registry.promote("v1")
    write_gate(registry, "v2", False)
    with pytest.raises(RegistryError, match="failed the promotion gate"):
        registry.promote("v2")
    write_gate(registry, "v2", True, compared_to="intent/v1")
    registry.promote("candidate")
    assert registry.aliases() == {"candidate": "v2", "production": "v2"}
    assert registry.resolve("production") == path

    assert registry.rollback() == "intent/v1"
    assert registry.aliases()["production"] == "v1"
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback()
    moves = [(e.action, e.alias, e.from_version, e.to_version) for e in registry.history()]
    assert moves == [("register", "candidate", None, "v1"), ("register", "candidate", "v1", "v2"),
                     ("promote", "production", None, "v1"), ("promote", "production", "v1", "v2"),
                     ("rollback", "production", "v2", "v1")]
    assert [(v.version, v.aliases, v.gate.summary) for v in registry.versions()] == \
           [("v1", ("production",), "passed"), ("v2", ("candidate",), "passed")]
    assert registry.names() == ["intent"]


def test_every_version_gets_a_checksum_manifest(registry, artifact):
    registry.register(artifact)
    path = registry.resolve("v1")
    entries = parse_manifest((path / MANIFEST).read_text(), MANIFEST)
    assert META in entries and ONNX_INT8 in entries and MANIFEST not in entries
    assert entries[ONNX_INT8] == file_sha256(artifact / ONNX_INT8)
    assert all(entries[rel] == file_sha256(path / rel) for rel in entries)
    # The manifest is what `sha256sum -c` reads.
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "--quiet", "-c", MANIFEST], cwd=path, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_versions_are_never_overwritten(registry, artifact, monkeypatch):
    registry.register(artifact)
    before = registry.store.read(f"intent/v1/{META}")
    # Two registrations that were handed the same number (a counter lost or edited by hand):
    monkeypatch.setattr(registry, "_claim_number", lambda name: 1)
    with pytest.raises(RegistryError, match="never overwritten"):
        registry.register(artifact)
    assert registry.store.read(f"intent/v1/{META}").data == before.data
    assert registry.aliases() == {"candidate": "v1"}
    assert [e.action for e in registry.history()] == ["register"]


def test_concurrent_promotions_lose_no_update(registry, artifact):
    versions = [registry.register(artifact) for _ in range(6)]
    for ref in versions:
        write_gate(registry, ref, True, in_copy=False)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def promoter(refs: list[str]) -> None:
        # A Registry per thread, as per replica or per operator: no shared client, no shared lock object.
        mine = Registry(registry.root)
        barrier.wait()
        try:
            for ref in refs:
                mine.promote(ref)
        except BaseException as e:  # reported below, so a failure names itself
            errors.append(e)

    threads = [threading.Thread(target=promoter, args=(versions[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    promotions = [e for e in registry.history() if e.action == "promote"]
    assert sorted(e.to_version for e in promotions) == sorted(ref.split("/")[1] for ref in versions)
    # Each promotion moved from what the one before it set: nobody wrote over a state they had not seen.
    assert [e.from_version for e in promotions] == [None] + [e.to_version for e in promotions[:-1]]
    assert registry.aliases()["production"] == promotions[-1].to_version


# ------------------------------------------------------------------ object store specifics

def test_object_store_layout_one_object_per_event(s3_registry, artifact, s3):
    s3_registry.register(artifact)
    s3_registry.register(artifact)
    write_gate(s3_registry, "v1", True, in_copy=False)
    s3_registry.promote("v1")
    bucket = s3_registry.store.bucket
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="registry/")["Contents"]}
    assert {"registry/intent/aliases.json", "registry/intent/last_version",
            "registry/intent/v1/checksums.sha256", "registry/intent/v1/evaluation/gate.json",
            "registry/intent/history/00000001.json", "registry/intent/history/00000002.json",
            "registry/intent/history/00000003.json"} <= keys
    aliases = json.loads(s3.client().get_object(Bucket=bucket, Key="registry/intent/aliases.json")["Body"].read())
    assert aliases == {"candidate": "v2", "production": "v1", "events": 3}
    assert not any(k.startswith("registry/intent/.") for k in keys)  # no lock or staging objects


def test_resolve_downloads_once_and_verifies_the_cache(s3_registry, artifact, s3, tmp_path):
    s3_registry.register(artifact)
    path = s3_registry.resolve("v1")
    assert path == tmp_path / "cache" / s3_registry.store.bucket / "registry" / "intent" / "v1"
    model = path / ONNX_INT8
    inode = model.stat().st_ino
    assert s3_registry.resolve("candidate") == path and model.stat().st_ino == inode  # verified, not downloaded

    model.write_bytes(b"tampered")  # a corrupt cached file is fetched again
    assert s3_registry.resolve("v1") == path
    assert file_sha256(model) == file_sha256(artifact / ONNX_INT8) and model.stat().st_ino != inode
    (path / META).unlink()  # so is a missing one
    assert ArtifactMeta.load(s3_registry.resolve("v1")).version == "v1"


def test_a_corrupt_stored_file_is_refused(s3_registry, artifact, s3, tmp_path):
    s3_registry.register(artifact)
    s3.client().put_object(Bucket=s3_registry.store.bucket, Key=f"registry/intent/v1/{ONNX_INT8}", Body=b"bad")
    with pytest.raises(RegistryError, match=rf"intent/v1/{ONNX_INT8} does not match its sha256 in "
                                            rf"s3://.*/registry/intent/v1/checksums.sha256: the stored version "
                                            "is corrupt"):
        s3_registry.resolve("v1")
    assert not (tmp_path / "cache" / s3_registry.store.bucket / "registry" / "intent" / "v1").exists()


def test_an_interrupted_upload_is_not_used(s3_registry, artifact, s3):
    s3_registry.register(artifact)
    s3.client().delete_object(Bucket=s3_registry.store.bucket, Key="registry/intent/v1/checksums.sha256")
    with pytest.raises(RegistryError, match="has no checksums.sha256: its upload was interrupted"):
        s3_registry.resolve("v1")


def test_errors_are_one_line(s3, s3_env, artifact, tmp_path, monkeypatch):
    with pytest.raises(RegistryError, match="bucket 'no-such-bucket' does not exist at http://127.0.0.1"):
        Registry("s3://no-such-bucket/r").versions()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(RegistryError, match=f"cannot reach the object store at {closed}"):
        Registry(f"s3://{s3_env}/r", endpoint_url=closed).aliases()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RegistryError, match="no S3 credentials"):
        Registry(f"s3://{s3_env}/r").register(artifact)
    with pytest.raises(RegistryError, match="only local directories and s3://"):
        Registry("gs://bucket/r")


def test_cli_against_the_object_store(s3, s3_env, artifact, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CALLINTENT_REGISTRY_CACHE", str(tmp_path / "cache"))
    url = f"s3://{s3_env}/models"

    def cli(*args: str) -> int:
        return main(["models", "--registry", url, *args])

    assert cli("register", str(artifact)) == 0 and capsys.readouterr().out.strip() == "intent/v1"
    assert cli("register", str(artifact)) == 0
    assert cli("promote", "v1", "--force", "--reason", "first model") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "intent:production -> intent/v1 (forced)"
    assert cli("promote", "candidate") == 2
    assert "intent/v2 has not been evaluated" in capsys.readouterr().err
    write_gate(Registry(url), "v2", True, compared_to="intent/v1")
    assert cli("promote", "candidate", "--to", "production") == 0
    assert cli("list") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].split()[0] == "intent/v2" and "candidate,production" in lines[-1] and lines[-1].endswith("passed")
    assert cli("show", "production") == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"intent/v2  {url}/intent/v2") and f"{url}/intent/v2/MODEL_CARD.md" in shown
    assert cli("path", "production") == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == tmp_path / "cache" / s3_env / "models" / "intent" / "v2" and (path / ONNX_INT8).is_file()
    assert cli("rollback") == 0 and capsys.readouterr().out.strip() == "intent:production -> intent/v1"
    assert cli("history") == 0
    history = capsys.readouterr().out.splitlines()
    assert len(history) == 5 and "FORCED" in history[2] and "first model" in history[2]
    # The endpoint option wins over the environment.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert main(["models", "--registry", url, "--registry-endpoint", s3.endpoint_url, "list"]) == 0
    capsys.readouterr()


def test_cli_errors_are_one_line_with_a_nonzero_exit(s3, tmp_path):
    env = {**os.environ, **s3.env(), "CALLINTENT_REGISTRY_CACHE": str(tmp_path / "cache"),
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
    out = subprocess.run([sys.executable, "-m", "callintent", "models", "--registry", "s3://missing-bucket/x", "list"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"callintent models: error: s3://missing-bucket/x/intent: bucket 'missing-bucket' does not exist at "
        f"{s3.endpoint_url}"]


def test_serve_resolves_production_from_the_object_store(s3, s3_env, artifact, tmp_path):
    registry = Registry(f"s3://{s3_env}/models", cache_dir=tmp_path / "cache")
    registry.promote(registry.register(artifact), force=True, reason="test")
    env = {**os.environ, **s3.env(), "CALLINTENT_REGISTRY_CACHE": str(tmp_path / "cache"),
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # the serve.yaml key / option wins over it
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
    out = subprocess.run([sys.executable, "-m", "callintent", "serve", "--registry", f"s3://{s3_env}/models",
                          "--registry-endpoint", s3.endpoint_url, "--dry-run"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cached = tmp_path / "cache" / s3_env / "models" / "intent" / "v1"
    assert f"model production -> {cached} (int8)" in out.stderr and (cached / ONNX_INT8).is_file()
    # The default SQLite call log lives in a local registry root; an object store needs call_log.url.
    from serving.config import load_serve_config

    config = load_serve_config(overrides={"registry": f"s3://{s3_env}/models",
                                          "registry_endpoint_url": s3.endpoint_url})
    with pytest.raises(UserError, match="call_log.url must be set when the registry is an object store"):
        config.call_log_url()
