"""The import graph keeps its shape: packages import only packages below them, and within
``serving/`` every module imports only its own layer or lower ones, with no import loops.

Every ``import`` statement counts, wherever it is (module level, inside a function, under
``TYPE_CHECKING``): a lazy upward import is still an upward dependency. ``callintent.cli``
dispatches to each stage's CLI by module name (``importlib``), like console-script entry points,
so it depends on no stage.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Each package and the project packages it may import (a DAG, bottom first).
ALLOWED: dict[str, set[str]] = {
    "callintent": set(),  # errors, config, version: the ground floor
    "speech": {"callintent"},  # audio, ASR, timed words, speakers: the runtime both serving and data use
    "models": {"callintent"},  # label schema, scores, metrics, artifact, predictor, registry
    "data": {"callintent", "speech", "models"},  # offline: corpora, datasets, rendering, transcription
    "training": {"callintent", "speech", "models", "data"},
    "serving": {"callintent", "speech", "models"},  # never data or training (no torch in the serving install)
    "evaluation": {"callintent", "speech", "models", "data", "serving"},
}

#: ``serving/`` modules by layer, top (0) to bottom: service → routes → sessions → HTTP schemas →
#: scoring → call log (and webhook delivery from its outbox) → config → live call → leaf modules.
#: A module may import its own layer or lower ones, never a higher one.
SERVING_LAYERS: dict[str, int] = {
    "serving.service": 0,
    "serving.app": 1, "serving.uploads": 1, "serving.http_errors": 1, "serving.calllog.routes": 1,
    "serving.cli": 1, "serving.stream_cli": 1, "serving.webhook_routes": 1, "serving.webhooks_cli": 1,
    "serving.sessions": 2,
    "serving.schemas": 3,
    "serving.scoring": 4, "serving.model_watch": 4,
    "serving.calllog.records": 5, "serving.calllog.store": 5, "serving.calllog.writer": 5,
    "serving.calllog.report": 5, "serving.calllog.migrations.env": 5, "serving.live_floor": 5,
    "serving.calllog.callbacks": 5, "serving.calllog.outbox": 5, "serving.webhooks": 5,
    "serving.live_pages": 1,
    "serving.logs": 6, "serving.config": 6,
    "serving.live_call": 7,
    **{f"serving.{leaf}": 8 for leaf in ("policy", "redact", "limits", "auth", "metrics", "asr_batcher", "twilio",
                                          "batching", "client", "view_tokens", "screen_pop", "callbacks",
                                          "webhook_policy", "webhook_signing")},
}


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((REPO / package).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path) -> set[str]:
    """Dotted names a module imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_packages_below_them(package):
    upward = []
    for module, path in _modules(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ALLOWED and top != package and top not in ALLOWED[package]:
                upward.append(f"{module} imports {name}")
    assert not upward, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(sorted(set(upward)))


def test_the_package_graph_is_a_dag():
    seen: dict[str, int] = {}

    def depth(package: str, trail: tuple[str, ...] = ()) -> int:
        assert package not in trail, f"package loop: {' -> '.join((*trail, package))}"
        if package not in seen:
            seen[package] = 1 + max((depth(p, (*trail, package)) for p in ALLOWED[package]), default=0)
        return seen[package]

    assert all(depth(p) >= 1 for p in ALLOWED)


def _serving_graph() -> dict[str, set[str]]:
    modules = dict(_modules("serving"))
    graph = {}
    for module, path in modules.items():
        graph[module] = {name for name in _imports(path) if name in modules and name != module and name != "serving"}
    return graph


def test_every_serving_module_has_a_layer():
    graph = _serving_graph()
    missing = sorted(m for m in graph if m not in SERVING_LAYERS and m != "serving"
                     and not m.startswith("serving.calllog.migrations.versions") and m not in (
                         "serving.calllog", "serving.calllog.migrations"))
    assert not missing, f"give these serving modules a layer in SERVING_LAYERS: {missing}"


def test_serving_modules_import_only_their_layer_or_lower():
    upward = [f"{module} (layer {SERVING_LAYERS[module]}) imports {name} (layer {SERVING_LAYERS[name]})"
              for module, names in _serving_graph().items() if module in SERVING_LAYERS
              for name in names if name in SERVING_LAYERS and SERVING_LAYERS[name] < SERVING_LAYERS[module]]
    assert not upward, "\n".join(sorted(upward))


def test_serving_has_no_import_loops():
    graph = _serving_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, f"import loop: {' -> '.join([*trail[trail.index(module):], module])}"
        state[module] = 1
        for name in sorted(graph.get(module, ())):
            visit(name, [*trail, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])


def test_the_checks_see_an_upward_import(tmp_path):
    """The walker finds imports inside functions and under TYPE_CHECKING (what a lazy loop hides in)."""
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from serving.service import X\n"
                      "def f():\n    import training.train\n")
    assert {"serving.service", "serving.service.X", "training.train"} <= _imports(source)
