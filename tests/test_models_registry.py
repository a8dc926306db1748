"""The model registry: versions, aliases, the evaluation gate, rollback, concurrency and the CLI."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest
from model_fixtures import build_tiny_artifact

from callintent.cli import main
from callintent.errors import UserError
from models.artifact import META, ArtifactMeta
from models.predictor import ArtifactError, IntentPredictor
from models.registry import Registry, RegistryError


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny") / "artifact",
                               metrics={"validation": {"macro_f1": 0.8125, "accuracy": 0.9}})


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "registry")


def write_gate(registry: Registry, ref: str, passed: bool, reasons=(), compared_to=None) -> None:
    evaluation = registry.resolve(ref) / "evaluation"
    evaluation.mkdir(exist_ok=True)
    (evaluation / "gate.json").write_text(json.dumps({"passed": passed, "reasons": list(reasons),
                                                      "compared_to": compared_to}))


def test_register_assigns_increasing_versions_and_sets_candidate(registry, artifact):
    assert registry.register(artifact) == "intent/v1"
    assert registry.register(artifact) == "intent/v2"
    assert registry.aliases() == {"candidate": "v2"}
    path = registry.resolve("v2")
    assert path == registry.root / "intent" / "v2"
    meta = ArtifactMeta.load(path)
    assert (meta.name, meta.version) == ("intent", "v2")
    assert ArtifactMeta.load(artifact).version == ""  # the source is not touched
    assert IntentPredictor.load(path).predict(["hi"])[0].model == "intent/v2"
    assert not any(p.name.startswith(".incoming") for p in (registry.root / "intent").iterdir())
    assert [e.action for e in registry.history()] == ["register", "register"]


def test_version_numbers_are_never_reused(registry, artifact):
    registry.register(artifact)
    registry.register(artifact)
    shutil.rmtree(registry.root / "intent" / "v2")
    assert registry.register(artifact) == "intent/v3"
    assert [v.version for v in registry.versions()] == ["v1", "v3"]


def test_register_refuses_incomplete_artifacts_and_bad_names(registry, artifact, tmp_path):
    broken = Path(shutil.copytree(artifact, tmp_path / "broken"))
    (broken / "model.int8.onnx").unlink()
    with pytest.raises(ArtifactError, match="missing model.int8.onnx"):
        registry.register(broken)
    with pytest.raises(RegistryError, match="model name"):
        registry.register(artifact, name="v2")
    assert registry.versions() == []


def test_register_does_not_copy_a_stale_gate(registry, artifact, tmp_path):
    source = Path(shutil.copytree(artifact, tmp_path / "evaluated"))
    (source / "evaluation").mkdir()
    (source / "evaluation" / "gate.json").write_text('{"passed": true, "reasons": []}')
    registry.register(source)
    assert registry.show("v1").gate.passed is None


def test_resolve_every_reference_form(registry, artifact, tmp_path):
    registry.register(artifact)
    registry.register(artifact)
    write_gate(registry, "v1", True)
    registry.promote("v1")
    root = registry.root / "intent"
    assert registry.resolve("production") == root / "v1"
    assert registry.resolve("candidate") == root / "v2"
    assert registry.resolve("v2") == root / "v2"
    assert registry.resolve("intent/v1") == root / "v1"
    assert registry.resolve("intent:production") == root / "v1"
    assert registry.resolve("intent/candidate") == root / "v2"
    assert registry.resolve(str(artifact)) == artifact
    assert registry.resolve(artifact) == artifact
    with pytest.raises(UserError, match=r"intent/v9 not found; .* has intent versions v1, v2; "
                                        r"aliases: candidate -> v2, production -> v1"):
        registry.resolve("v9")
    with pytest.raises(RegistryError, match="unknown version or alias 'staging'"):
        registry.resolve("staging")
    with pytest.raises(RegistryError, match="no versions of 'other'"):
        registry.resolve("other:production")
    with pytest.raises(RegistryError, match="not an artifact directory"):
        registry.resolve(str(tmp_path / "nowhere" / "at" / "all"))


def test_unset_alias_is_reported(registry, artifact):
    registry.register(artifact)
    with pytest.raises(RegistryError, match="intent:production is not set"):
        registry.resolve("production")


def test_environment_sets_the_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CALLINTENT_REGISTRY", str(tmp_path / "elsewhere"))
    assert Registry().root == tmp_path / "elsewhere"


def test_promote_without_gate_is_refused(registry, artifact):
    registry.register(artifact)
    with pytest.raises(RegistryError,
                       match=r"intent/v1 has not been evaluated: run `callintent evaluate intent/v1"):
        registry.promote("candidate")
    assert "production" not in registry.aliases()


def test_failed_gate_is_refused_with_its_reasons(registry, artifact):
    registry.register(artifact)
    write_gate(registry, "v1", False, ["macro_f1 0.71 < production 0.80 - 0.01", "ece 0.09 > 0.05"])
    with pytest.raises(RegistryError, match=r"failed the promotion gate: "
                                            r"macro_f1 0.71 < production 0.80 - 0.01; ece 0.09 > 0.05"):
        registry.promote("v1")
    assert registry.show("v1").gate.summary == "failed"


def test_passed_gate_promotes(registry, artifact):
    registry.register(artifact)
    write_gate(registry, "v1", True, ["macro_f1 0.81 >= 0.75"])
    registry.promote("intent/v1", "production")
    assert registry.aliases() == {"candidate": "v1", "production": "v1"}
    last = registry.history()[-1]
    assert (last.action, last.alias, last.from_version, last.to_version, last.forced) == \
           ("promote", "production", None, "v1", False)
    assert last.user and last.time


def test_gate_against_an_old_production_is_stale(registry, artifact):
    for _ in range(3):
        registry.register(artifact)
    write_gate(registry, "v1", True)
    registry.promote("v1")
    write_gate(registry, "v2", True, compared_to="intent/v1")
    write_gate(registry, "v3", True, compared_to="intent/v1")
    registry.promote("v2")
    with pytest.raises(RegistryError, match="evaluated against intent/v1, but production is now intent/v2"):
        registry.promote("v3")


def test_force_needs_a_reason_and_is_recorded(registry, artifact):
    registry.register(artifact)
    write_gate(registry, "v1", False, ["too slow"])
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.promote("v1", force=True)
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.promote("v1", force=True, reason="   ")
    registry.promote("v1", force=True, reason="first model, no baseline")
    assert registry.aliases()["production"] == "v1"
    lines = (registry.root / "intent" / "history.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["action"] == "promote" and last["forced"] is True
    assert last["reason"] == "first model, no baseline" and last["to"] == "v1" and last["from"] is None
    assert last["user"] and last["time"]


def test_rollback_walks_back_through_history(registry, artifact):
    for n in range(1, 4):
        registry.register(artifact)
        write_gate(registry, f"v{n}", True)
        registry.promote(f"v{n}")
    assert registry.aliases()["production"] == "v3"
    assert registry.rollback() == "intent/v2"
    assert registry.resolve("production").name == "v2"
    assert registry.rollback() == "intent/v1"
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback()
    assert registry.aliases()["production"] == "v1"
    entry = registry.history()[-1]
    assert (entry.action, entry.from_version, entry.to_version) == ("rollback", "v2", "v1")
    # Candidate has its own trail: v1 -> v2 -> v3 by registration.
    assert registry.rollback("candidate") == "intent/v2"


def test_rollback_with_nothing_before(registry, artifact):
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback()
    registry.register(artifact)
    write_gate(registry, "v1", True)
    registry.promote("v1")
    with pytest.raises(RegistryError, match="now v1"):
        registry.rollback()


def test_versions_and_show(registry, artifact):
    registry.register(artifact)
    registry.register(artifact)
    write_gate(registry, "v2", True, ["ok"], compared_to=None)
    infos = registry.versions()
    assert [(i.version, i.aliases, i.gate.summary) for i in infos] == \
           [("v1", (), "not evaluated"), ("v2", ("candidate",), "passed")]
    info = registry.show("candidate")
    assert info.ref == "intent/v2"
    assert info.val_macro_f1 == pytest.approx(0.8125)
    assert info.metrics["validation.accuracy"] == pytest.approx(0.9)
    assert info.created_at == ArtifactMeta.load(artifact).created_at
    assert registry.versions("other") == []


def _register_worker(root: str, artifact: str, count: int, start, out) -> None:
    start.wait()
    refs = [Registry(root).register(artifact) for _ in range(count)]
    out.put(refs)


def test_concurrent_registration_gets_distinct_versions(tmp_path, artifact):
    context = multiprocessing.get_context("fork")
    start, out = context.Event(), context.Queue()
    root = str(tmp_path / "registry")
    workers = [context.Process(target=_register_worker, args=(root, str(artifact), 2, start, out))
               for _ in range(3)]
    for w in workers:
        w.start()
    start.set()
    refs = [ref for _ in workers for ref in out.get(timeout=60)]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert sorted(refs, key=lambda r: int(r.split("/v")[1])) == [f"intent/v{n}" for n in range(1, 7)]
    registry = Registry(root)
    assert [v.version for v in registry.versions()] == [f"v{n}" for n in range(1, 7)]
    assert all(ArtifactMeta.load(registry.resolve(r)).version == r.split("/")[1] for r in refs)
    assert len(registry.history()) == 6


# ---------------------------------------------------------------- CLI

def cli(root: Path, *args: str) -> int:
    return main(["models", "--registry", str(root), *args])


def test_cli_list_promote_rollback_path(tmp_path, artifact, capsys):
    root = tmp_path / "registry"
    assert cli(root, "list") == 0
    assert "no versions" in capsys.readouterr().out
    assert cli(root, "register", str(artifact)) == 0
    assert capsys.readouterr().out.strip() == "intent/v1"
    registry = Registry(root)
    registry.register(artifact)

    assert cli(root, "promote", "v1", "--to", "production") == 2
    assert "has not been evaluated" in capsys.readouterr().err
    assert cli(root, "promote", "v1", "--force") == 2
    assert "needs a reason" in capsys.readouterr().err
    assert cli(root, "promote", "v1", "--force", "--reason", "bootstrap") == 0
    assert capsys.readouterr().out.strip() == "intent:production -> intent/v1 (forced)"
    write_gate(registry, "v2", True, compared_to="intent/v1")
    assert cli(root, "promote", "candidate", "--to", "production") == 0
    assert registry.aliases()["production"] == "v2"
    capsys.readouterr()

    assert cli(root, "list") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["VERSION", "CREATED", "ALIASES", "VAL", "MACRO-F1", "GATE"]
    assert lines[1].split()[0] == "intent/v1" and "not evaluated" in lines[1]
    assert "candidate,production" in lines[2] and lines[2].endswith("passed") and "0.812" in lines[2]

    assert cli(root, "show", "production") == 0
    shown = capsys.readouterr().out
    assert "intent/v2" in shown and "MODEL_CARD.md" in shown
    assert "gate:           passed (against intent/v1)" in shown

    assert cli(root, "path", "production") == 0
    assert capsys.readouterr().out.strip() == str(root.absolute() / "intent" / "v2")
    assert cli(root, "rollback") == 0
    assert capsys.readouterr().out.strip() == "intent:production -> intent/v1"
    assert cli(root, "path", "v7") == 2
    assert "intent/v7 not found" in capsys.readouterr().err

    assert cli(root, "history") == 0
    history = capsys.readouterr().out.splitlines()
    assert len(history) == 5 and "FORCED" in history[2] and "bootstrap" in history[2]


def test_corrupt_meta_in_registry_is_a_user_error(registry, artifact):
    registry.register(artifact)
    (registry.resolve("v1") / META).write_text("{")
    with pytest.raises(UserError, match="corrupt artifact metadata"):
        registry.show("v1")
