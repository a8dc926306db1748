"""The versioned model registry: immutable version directories, movable aliases, an audit trail.

Layout under the root (default ``models/registry``, or ``$CALLINTENT_REGISTRY``)::

    <name>/v1/ v2/ …           artifact directories (copied in whole; never edited after, except
                               evaluation writing <version>/evaluation/)
    <name>/aliases.json        {"production": "v2", "candidate": "v3"}
    <name>/history.jsonl       one JSON line per register / promote / rollback
                               (time, user, reason, from → to)
    <name>/last_version        the highest number ever assigned, so a deleted version's number is never reused
    <name>/.lock               flock'ed around every change, so concurrent processes never collide

Promotion is gated by evaluation: ``<version>/evaluation/gate.json``
(``{"passed": bool, "reasons": [...], "compared_to": "intent/v2" | null}``) must say passed,
unless the promotion is forced with a written reason, which the history keeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import getpass
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from models.artifact import META, ArtifactMeta
from models.predictor import validate_artifact

logger = logging.getLogger(__name__)

ENV_ROOT = "CALLINTENT_REGISTRY"
DEFAULT_ROOT = "models/registry"
DEFAULT_NAME = "intent"
ALIASES: tuple[str, ...] = ("production", "candidate")
ALIASES_FILE = "aliases.json"
HISTORY_FILE = "history.jsonl"
COUNTER_FILE = "last_version"
LOCK_FILE = ".lock"
EVALUATION_DIR = "evaluation"
GATE_FILE = "gate.json"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
# "production", "v3", "intent/v3", "intent:production", "intent/candidate"
_REF_RE = re.compile(r"^(?:(?P<name>[a-z0-9][a-z0-9_.-]*)[/:])?(?P<target>[A-Za-z0-9_.-]+)$")


class RegistryError(UserError):
    """A registry reference that does not exist, a refused promotion, a bad name."""


@dataclass(frozen=True)
class GateStatus:
    """What evaluation's promotion gate said about a version.

    Attributes:
        passed: True/False from ``gate.json``; None when the version has not been evaluated.
        reasons: The gate's reasons (why it failed, or what it checked).
        compared_to: The version it was compared against (``"intent/v2"``), None if absolute.
    """

    passed: bool | None
    reasons: tuple[str, ...] = ()
    compared_to: str | None = None

    @property
    def summary(self) -> str:
        """``passed`` / ``failed`` / ``not evaluated``."""
        return {True: "passed", False: "failed", None: "not evaluated"}[self.passed]


@dataclass(frozen=True)
class VersionInfo:
    """One registered version, as ``models list`` / ``models show`` report it.

    Attributes:
        name: Model name.
        version: ``v<N>``.
        path: The version directory.
        created_at: Export time from the artifact (registration time when it has none).
        aliases: Aliases that point at this version.
        metrics: Numeric metrics from the artifact, flattened to dotted keys
            (``{"validation.macro_f1": 0.91, …}``).
        gate: The promotion gate status.
        meta: The full artifact metadata.
    """

    name: str
    version: str
    path: Path
    created_at: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    gate: GateStatus
    meta: ArtifactMeta = field(repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def val_macro_f1(self) -> float | None:
        """Validation macro-F1 (fp32 preferred), whatever nesting the export used; None if absent."""
        keys = [k for k in self.metrics if k.endswith("macro_f1") and ("val" in k or k == "macro_f1")]
        if not keys:
            return None
        keys.sort(key=lambda k: ("int8" in k, len(k)))
        return self.metrics[keys[0]]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``history.jsonl``.

    Attributes:
        time: ISO time (UTC).
        user: Login name of who did it.
        action: ``register``, ``promote`` or ``rollback``.
        alias: The alias that moved.
        from_version: What the alias pointed to before (None if unset).
        to_version: What it points to after.
        reason: Free text (required for forced promotions).
        forced: The gate was overridden.
    """

    time: str
    user: str
    action: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str = ""
    forced: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "user": self.user, "action": self.action, "alias": self.alias,
                "from": self.from_version, "to": self.to_version, "reason": self.reason,
                "forced": self.forced}


class Registry:
    """Model versions on disk under one root directory.

    Args:
        root: Registry root; None → ``$CALLINTENT_REGISTRY`` or ``models/registry``.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root if root is not None else os.environ.get(ENV_ROOT, DEFAULT_ROOT)).absolute()

    # ------------------------------------------------------------------ writing
    def register(self, artifact_dir: str | Path, name: str = DEFAULT_NAME) -> str:
        """Copy an exported artifact in as the next version and point ``candidate`` at it.

        The copy lands in a temporary directory inside the registry and is renamed into place,
        so a reader never sees a half-copied version. An ``evaluation/`` folder in the source is
        not copied: a new version has not been evaluated.

        Args:
            artifact_dir: A complete artifact (see ``models/artifact.py``).
            name: Model name.

        Returns:
            ``"<name>/v<N>"``.

        Raises:
            RegistryError: bad name; ArtifactError: incomplete or mismatched artifact.
        """
        _check_name(name)
        source = Path(artifact_dir)
        meta = validate_artifact(source)
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        incoming = model_dir / f".incoming-{uuid.uuid4().hex}"
        try:
            # The slow copy happens outside the lock; only numbering and the rename are serialised.
            shutil.copytree(source, incoming, ignore=shutil.ignore_patterns(EVALUATION_DIR))
            with self._locked(name):
                number = max(self._last_number(name), *self._existing_numbers(name), 0) + 1
                version = f"v{number}"
                now = _now()
                dataclasses.replace(meta, name=name, version=version,
                                    created_at=meta.created_at or now).save(incoming)
                os.rename(incoming, model_dir / version)
                _atomic_write(model_dir / COUNTER_FILE, f"{number}\n")
                aliases = self._aliases(name)
                previous = aliases.get("candidate")
                aliases["candidate"] = version
                self._write_aliases(name, aliases)
                origin = f"registered from {source.absolute()}"
                self._append_history(name, HistoryEntry(now, _user(), "register", "candidate", previous,
                                                        version, reason=origin))
        finally:
            if incoming.exists():
                shutil.rmtree(incoming, ignore_errors=True)
        logger.info("registered %s/%s from %s", name, version, source)
        return f"{name}/{version}"

    def promote(self, ref: str, alias: str = "production", *, force: bool = False, reason: str = "") -> None:
        """Point ``alias`` at a version once evaluation's gate has passed it.

        Args:
            ref: Any registry reference (``"v3"``, ``"intent/v3"``, ``"candidate"``…).
            alias: ``production`` or ``candidate``.
            force: Promote although the gate failed or never ran; needs ``reason``.
            reason: Why (kept in the history; required with ``force``).

        Raises:
            RegistryError: unknown ref or alias, force without a reason, or the gate refused
                (the message carries the gate's reasons or says how to evaluate).
        """
        if alias not in ALIASES:
            raise RegistryError(f"alias must be one of {list(ALIASES)}, got {alias!r}")
        if force and not reason.strip():
            raise RegistryError("a forced promotion needs a reason (--reason TEXT); it goes into the history")
        name, version = self._locate(ref)
        target = f"{name}/{version}"
        gate = self.gate(name, version)
        if not force:
            if gate.passed is None:
                raise RegistryError(f"{target} has not been evaluated: "
                                    f"run `callintent evaluate {target} …` "
                                    f"(it writes {EVALUATION_DIR}/{GATE_FILE}); "
                                    "or promote with --force --reason")
            if not gate.passed:
                against = f" against {gate.compared_to}" if gate.compared_to else ""
                why = "; ".join(gate.reasons) or "no reasons given"
                raise RegistryError(f"{target} failed the promotion gate{against}: {why}")
            if alias == "production":
                self._check_gate_current(name, target, gate)
        with self._locked(name):
            aliases = self._aliases(name)
            previous = aliases.get(alias)
            if previous == version:
                logger.info("%s already points at %s; nothing to do", alias, target)
                return
            aliases[alias] = version
            self._write_aliases(name, aliases)
            self._append_history(name, HistoryEntry(_now(), _user(), "promote", alias, previous, version,
                                                    reason=reason.strip(), forced=force))
        logger.info("%s/%s -> %s (was %s)%s", name, alias, version, previous, " [forced]" if force else "")

    def rollback(self, alias: str = "production", name: str = DEFAULT_NAME) -> str:
        """Move ``alias`` back to the version it pointed to before its last move.

        Repeated rollbacks keep walking back (v3 → v2 → v1), as the history is replayed as a stack.

        Args:
            alias: ``production`` or ``candidate``.
            name: Model name.

        Returns:
            ``"<name>/<version>"`` the alias now points to.

        Raises:
            RegistryError: unknown alias, or no earlier version to go back to.
        """
        if alias not in ALIASES:
            raise RegistryError(f"alias must be one of {list(ALIASES)}, got {alias!r}")
        _check_name(name)
        with self._locked(name):
            earlier: list[str | None] = []
            for entry in self.history(name):
                if entry.alias != alias:
                    continue
                if entry.action == "rollback":
                    if earlier:
                        earlier.pop()
                else:
                    earlier.append(entry.from_version)
            aliases = self._aliases(name)
            current = aliases.get(alias)
            target = earlier[-1] if earlier else None
            if target is None:
                raise RegistryError(f"{name}:{alias} has no earlier version to roll back to "
                                    f"(now {current or 'unset'}; see {self.root / name / HISTORY_FILE})")
            if not (self.root / name / target).is_dir():
                raise RegistryError(f"cannot roll {name}:{alias} back to {target}: "
                                    f"{self.root / name / target} no longer exists")
            aliases[alias] = target
            self._write_aliases(name, aliases)
            self._append_history(name, HistoryEntry(_now(), _user(), "rollback", alias, current, target))
        logger.info("rolled %s/%s back from %s to %s", name, alias, current, target)
        return f"{name}/{target}"

    # ------------------------------------------------------------------ reading
    def resolve(self, ref: str | Path, *, name: str = DEFAULT_NAME) -> Path:
        """The artifact directory a reference names.

        Args:
            ref: ``"production"``, ``"candidate"``, ``"v3"``, ``"intent/v3"``, ``"intent:production"``,
                or a filesystem path to an artifact directory.
            name: Model name for references that do not say it.

        Returns:
            The directory.

        Raises:
            RegistryError: nothing by that reference (the message lists what exists).
        """
        path = Path(ref)
        if isinstance(ref, Path) or not _REF_RE.match(str(ref)):
            if (path / META).is_file():
                return path
            raise RegistryError(f"{ref}: not a registry reference and not an artifact directory "
                                f"(no {META}); {self._inventory(name)}")
        try:
            found_name, version = self._locate(str(ref), name=name)
        except RegistryError:
            if (path / META).is_file():  # e.g. a local directory that happens to be called "v3"
                return path
            raise
        return self.root / found_name / version

    def versions(self, name: str = DEFAULT_NAME) -> list[VersionInfo]:
        """Every version of ``name``, oldest first (empty if the model has none)."""
        _check_name(name)
        return [self._info(name, f"v{n}") for n in sorted(self._existing_numbers(name))]

    def show(self, ref: str, *, name: str = DEFAULT_NAME) -> VersionInfo:
        """Details of one version (any reference :meth:`resolve` accepts that lies in the registry)."""
        found_name, version = self._locate(ref, name=name)
        return self._info(found_name, version)

    def names(self) -> list[str]:
        """Model names in the registry."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.match(p.name))

    def aliases(self, name: str = DEFAULT_NAME) -> dict[str, str]:
        """``{"production": "v2", …}`` for ``name``."""
        _check_name(name)
        return self._aliases(name)

    def gate(self, name: str, version: str) -> GateStatus:
        """Evaluation's gate verdict for a version (``passed=None`` when not evaluated)."""
        path = self.root / name / version / EVALUATION_DIR / GATE_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return GateStatus(None)
        except json.JSONDecodeError as e:
            raise RegistryError(f"{path}: corrupt gate file: {e}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("passed"), bool):
            raise RegistryError(f"{path}: gate file must be an object with a boolean 'passed'")
        reasons = raw.get("reasons") or []
        if not isinstance(reasons, list):
            raise RegistryError(f"{path}: 'reasons' must be a list of strings")
        compared = raw.get("compared_to")
        return GateStatus(raw["passed"], tuple(str(r) for r in reasons), str(compared) if compared else None)

    def history(self, name: str = DEFAULT_NAME) -> list[HistoryEntry]:
        """Every recorded change for ``name``, oldest first."""
        _check_name(name)
        path = self.root / name / HISTORY_FILE
        if not path.is_file():
            return []
        entries = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                entries.append(HistoryEntry(raw["time"], raw["user"], raw["action"], raw["alias"],
                                            raw["from"], raw["to"], raw.get("reason", ""),
                                            bool(raw.get("forced", False))))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise RegistryError(f"{path}:{lineno}: corrupt history line: {e}") from None
        return entries

    # ------------------------------------------------------------------ internals
    def _locate(self, ref: str, *, name: str = DEFAULT_NAME) -> tuple[str, str]:
        """``(name, "v<N>")`` of an existing version named by a registry reference or a path inside it."""
        ref = str(ref).strip()
        match = _REF_RE.match(ref)
        if match is None:
            path = Path(ref).absolute()
            if path.parent.parent == self.root and _VERSION_RE.match(path.name) and path.is_dir():
                return path.parent.name, path.name
            raise RegistryError(f"{ref}: not a registry reference (use v3, intent/v3, production, "
                                f"intent:candidate); {self._inventory(name)}")
        name = match["name"] or name
        target = match["target"]
        if _VERSION_RE.match(target):
            version = target
        elif target in ALIASES:
            version = self._aliases(name).get(target)
            if version is None:
                raise RegistryError(f"{name}:{target} is not set; {self._inventory(name)}")
        else:
            raise RegistryError(f"{ref}: unknown version or alias {target!r}; {self._inventory(name)}")
        if not (self.root / name / version).is_dir():
            raise RegistryError(f"{name}/{version} not found; {self._inventory(name)}")
        return name, version

    def _inventory(self, name: str) -> str:
        """What exists, for error messages."""
        numbers = sorted(self._existing_numbers(name)) if _NAME_RE.match(name) else []
        if not numbers:
            others = [n for n in self.names() if n != name]
            more = f" (models here: {', '.join(others)})" if others else ""
            return f"registry {self.root} has no versions of {name!r}{more}"
        aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(self._aliases(name).items())) or "none"
        return (f"registry {self.root} has {name} versions {', '.join(f'v{n}' for n in numbers)}; "
                f"aliases: {aliases}")

    def _check_gate_current(self, name: str, target: str, gate: GateStatus) -> None:
        """Refuse a production promotion whose gate compared against a production that has since moved."""
        if not gate.compared_to:
            return
        try:
            compared = "/".join(self._locate(gate.compared_to, name=name))
        except RegistryError:
            logger.warning("gate of %s compared to %r, which is not in the registry; "
                           "not checking that it is current", target, gate.compared_to)
            return
        production = self._aliases(name).get("production")
        if production is not None and compared != f"{name}/{production}":
            raise RegistryError(f"{target} was evaluated against {compared}, but production is now "
                                f"{name}/{production}: run `callintent evaluate {target} …` again")

    def _info(self, name: str, version: str) -> VersionInfo:
        path = self.root / name / version
        try:
            meta = ArtifactMeta.load(path)
        except UserError as e:
            raise RegistryError(str(e)) from None
        except (TypeError, KeyError) as e:  # fields added or missing by hand
            raise RegistryError(f"{path / META}: invalid artifact metadata: {e}") from None
        aliases = tuple(a for a, v in sorted(self._aliases(name).items()) if v == version)
        return VersionInfo(name=name, version=version, path=path, created_at=meta.created_at, aliases=aliases,
                           metrics=_flatten_numbers(meta.metrics), gate=self.gate(name, version), meta=meta)

    def _existing_numbers(self, name: str) -> list[int]:
        model_dir = self.root / name
        if not model_dir.is_dir():
            return []
        return [int(m[1]) for p in model_dir.iterdir() if p.is_dir() and (m := _VERSION_RE.match(p.name))]

    def _last_number(self, name: str) -> int:
        path = self.root / name / COUNTER_FILE
        try:
            return int(path.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            return 0
        except ValueError:
            raise RegistryError(f"{path}: corrupt version counter (expected an integer)") from None

    def _aliases(self, name: str) -> dict[str, str]:
        path = self.root / name / ALIASES_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as e:
            raise RegistryError(f"{path}: corrupt aliases file: {e}") from None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise RegistryError(f"{path}: aliases must be an object of alias -> version")
        return raw

    def _write_aliases(self, name: str, aliases: dict[str, str]) -> None:
        _atomic_write(self.root / name / ALIASES_FILE, json.dumps(aliases, indent=2, sort_keys=True) + "\n")

    def _append_history(self, name: str, entry: HistoryEntry) -> None:
        with open(self.root / name / HISTORY_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry.to_json()) + "\n")

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``<name>/.lock`` (released when the file closes)."""
        import fcntl

        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with open(model_dir / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def alias_ref(ref: str | Path, *, name: str = DEFAULT_NAME) -> tuple[str, str] | None:
    """``(name, alias)`` when a reference names an alias (``production``, ``intent:candidate``…).

    A running service follows such a reference (``serving.model_watch``); a pinned version
    (``v3``, ``intent/v3``) or a directory path never moves, so it gives None.
    """
    match = None if isinstance(ref, Path) else _REF_RE.match(str(ref).strip())
    if match is None or match["target"] not in ALIASES:
        return None
    return match["name"] or name, match["target"]


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or _VERSION_RE.match(name) or name in ALIASES:
        raise RegistryError("model name must be lowercase letters, digits, '.', '_' or '-' and not look "
                            f"like a version or alias, got {name!r}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _flatten_numbers(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flatten_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return f"uid-{os.getuid()}"
