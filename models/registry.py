"""The versioned model registry: immutable versions, movable aliases, an audit trail.

The root (default ``models/registry``, or ``$CALLINTENT_REGISTRY``) is a local directory or an
object store, ``s3://bucket/prefix`` (AWS S3 or any S3-compatible server:
:mod:`models.registry_store`). Both hold the same layout, and :class:`Registry` applies the same
rules to both through one small storage interface::

    <name>/v1/ v2/ …           artifact directories, stored whole and never overwritten (a register
                               that meets an existing version is refused); only evaluation writes
                               <version>/evaluation/ afterwards
    <name>/v<N>/checksums.sha256   sha256 of every artifact file, written at register time
    <name>/aliases.json        {"production": "v2", "candidate": "v3", "events": 7}: replaced whole
                               in one write, conditionally (flock'ed locally; If-Match on S3), so two
                               concurrent promoters cannot lose an update
    <name>/history.jsonl       (local) one JSON line per register / promote / rollback
    <name>/history/00000007.json   (S3) one object per event, numbered by the alias write that won it
                               (time, user, reason, from → to)
    <name>/last_version        the highest number ever assigned, so a deleted version's number is never reused
    <name>/.lock               (local) flock'ed around every change, so concurrent processes never collide

:meth:`Registry.resolve` returns a local directory: the version itself in a local registry; for an
object store, a copy downloaded into a cache (``$CALLINTENT_REGISTRY_CACHE`` or
``~/.cache/callintent/registry``) and checked file by file against the version's checksums, on
every resolve (a bad cached file is downloaded again; a bad stored one is refused).

Promotion is gated by evaluation: ``<version>/evaluation/gate.json``
(``{"passed": bool, "reasons": [...], "compared_to": "intent/v2" | null}``) must say passed,
unless the promotion is forced with a written reason, which the history keeps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import logging
import os
import random
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from models.artifact import META, ArtifactMeta
from models.checksums import MANIFEST, mismatches, parse_manifest, write_manifest
from models.predictor import validate_artifact
from models.registry_store import Blob, RegistryError, RegistryStore, WriteConflict, open_store

__all__ = ["ALIASES", "DEFAULT_NAME", "GateStatus", "HistoryEntry", "Registry", "RegistryError", "VersionInfo"]

logger = logging.getLogger(__name__)

ENV_ROOT = "CALLINTENT_REGISTRY"
DEFAULT_ROOT = "models/registry"
DEFAULT_NAME = "intent"
ALIASES: tuple[str, ...] = ("production", "candidate")
ALIASES_FILE = "aliases.json"
#: Key in ``aliases.json`` counting the history events, so each alias write numbers its event.
EVENTS_KEY = "events"
COUNTER_FILE = "last_version"
EVALUATION_DIR = "evaluation"
GATE_FILE = "gate.json"
#: Conditional writes retried this often before giving up (only concurrent writers cause retries).
WRITE_ATTEMPTS = 20

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
# "production", "v3", "intent/v3", "intent:production", "intent/candidate"
_REF_RE = re.compile(r"^(?:(?P<name>[a-z0-9][a-z0-9_.-]*)[/:])?(?P<target>[A-Za-z0-9_.-]+)$")


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
        path: The version's local directory (for an object store: where :meth:`Registry.resolve`
            puts the verified copy; it may not be downloaded yet).
        created_at: Export time from the artifact (registration time when it has none).
        aliases: Aliases that point at this version.
        metrics: Numeric metrics from the artifact, flattened to dotted keys
            (``{"validation.macro_f1": 0.91, …}``).
        gate: The promotion gate status.
        meta: The full artifact metadata.
        location: Where the version is stored (the directory, or ``s3://…/intent/v3``).
    """

    name: str
    version: str
    path: Path
    created_at: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    gate: GateStatus
    meta: ArtifactMeta = field(repr=False)
    location: str = ""

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
    """Model versions under one root: a local directory or ``s3://bucket/prefix``.

    Args:
        root: Registry root; None → ``$CALLINTENT_REGISTRY`` or ``models/registry``.
        endpoint_url: S3-compatible endpoint for an ``s3://`` root; None → ``$AWS_ENDPOINT_URL``
            (or AWS itself).
        cache_dir: Where an ``s3://`` registry's versions are downloaded; None →
            ``$CALLINTENT_REGISTRY_CACHE`` or ``~/.cache/callintent/registry``.

    Attributes:
        root: The local root directory (a ``Path``), or the ``s3://`` URL (a ``str``).
        store: The storage behind it (:mod:`models.registry_store`).
    """

    def __init__(self, root: str | Path | None = None, *, endpoint_url: str | None = None,
                 cache_dir: str | Path | None = None) -> None:
        location = root if root is not None else os.environ.get(ENV_ROOT, DEFAULT_ROOT)
        self.store: RegistryStore = open_store(location, endpoint_url=endpoint_url, cache_dir=cache_dir)
        self.root: Path | str = self.store.location if self.store.remote else self.store.local_root

    @property
    def remote(self) -> bool:
        """True for an object store (versions are downloaded to be used)."""
        return self.store.remote

    # ------------------------------------------------------------------ writing
    def register(self, artifact_dir: str | Path, name: str = DEFAULT_NAME) -> str:
        """Store an exported artifact as the next version and point ``candidate`` at it.

        The artifact is copied into a staging directory, numbered, given its checksum manifest
        and then published whole (a rename locally; an upload with the manifest last to an object
        store), so a reader never sees a half-copied version. Published files are never
        overwritten. An ``evaluation/`` folder in the source is not copied: a new version has not
        been evaluated.

        Args:
            artifact_dir: A complete artifact (see ``models/artifact.py``).
            name: Model name.

        Returns:
            ``"<name>/v<N>"``.

        Raises:
            RegistryError: bad name, unreachable store; ArtifactError: incomplete or mismatched artifact.
        """
        _check_name(name)
        source = Path(artifact_dir)
        meta = validate_artifact(source)
        with self.store.staging_dir(name) as staged:
            # The slow copy happens outside the lock; numbering and publishing are serialised.
            shutil.copytree(source, staged, ignore=shutil.ignore_patterns(EVALUATION_DIR))
            with self.store.locked(name):
                version = f"v{self._claim_number(name)}"
                dataclasses.replace(meta, name=name, version=version,
                                    created_at=meta.created_at or _now()).save(staged)
                write_manifest(staged)
                self.store.publish_dir(staged, f"{name}/{version}")
                self._move_alias(name, "candidate", lambda aliases: version, action="register",
                                 reason=f"registered from {source.absolute()}")
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

        def choose(aliases: dict[str, str]) -> str | None:
            if not force and alias == "production":  # checked on the very state the write replaces
                self._check_gate_current(name, target, gate, aliases.get("production"))
            return None if aliases.get(alias) == version else version

        with self.store.locked(name):
            previous = self._move_alias(name, alias, choose, action="promote", reason=reason.strip(), forced=force)
        if previous is None:
            logger.info("%s already points at %s; nothing to do", alias, target)
            return
        logger.info("%s/%s -> %s (was %s)%s", name, alias, version, previous[0], " [forced]" if force else "")

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

        def choose(aliases: dict[str, str]) -> str:
            earlier: list[str | None] = []
            for entry in self.history(name):
                if entry.alias != alias:
                    continue
                if entry.action == "rollback":
                    if earlier:
                        earlier.pop()
                else:
                    earlier.append(entry.from_version)
            current = aliases.get(alias)
            target = earlier[-1] if earlier else None
            if target is None:
                raise RegistryError(f"{name}:{alias} has no earlier version to roll back to "
                                    f"(now {current or 'unset'}; see `callintent models history --name {name}`)")
            if not self.store.is_dir(f"{name}/{target}"):
                raise RegistryError(f"cannot roll {name}:{alias} back to {target}: "
                                    f"{self.store.describe(f'{name}/{target}')} no longer exists")
            return target

        with self.store.locked(name):
            moved = self._move_alias(name, alias, choose, action="rollback")
        assert moved is not None  # choose never says "nothing to do"
        logger.info("rolled %s/%s back from %s to %s", name, alias, *moved)
        return f"{name}/{moved[1]}"

    def record_evaluation(self, ref: str, directory: str | Path) -> str:
        """Store an evaluation folder (``gate.json``, ``metrics.json``) with a version, replacing the last one.

        ``evaluation/`` is the one part of a version that changes after registration (the last
        evaluation decides). In a local registry, evaluation writes it in place and this does
        nothing; for an object store it uploads the files written into the cached copy.

        Args:
            ref: The version (any reference in the registry).
            directory: The local ``evaluation/`` folder.

        Returns:
            Where the gate now lives (path or URL).
        """
        name, version = self._locate(ref)
        key = f"{name}/{version}/{EVALUATION_DIR}"
        directory = Path(directory).absolute()
        if directory != self.store.local_root / name / version / EVALUATION_DIR or self.store.remote:
            files = sorted((p for p in directory.rglob("*") if p.is_file()),
                           key=lambda p: p.name == GATE_FILE)  # the verdict last
            for path in files:
                self.store.write(f"{key}/{path.relative_to(directory).as_posix()}", path.read_bytes())
        return self.store.describe(f"{key}/{GATE_FILE}")

    # ------------------------------------------------------------------ reading
    def resolve(self, ref: str | Path, *, name: str = DEFAULT_NAME) -> Path:
        """The local artifact directory a reference names.

        For an object store the version is downloaded into the cache first, unless a copy there
        already matches every checksum of the version's manifest (checked on each call): a
        cached file that does not match is downloaded again; a stored one that does not match
        is refused.

        Args:
            ref: ``"production"``, ``"candidate"``, ``"v3"``, ``"intent/v3"``, ``"intent:production"``,
                or a filesystem path to an artifact directory.
            name: Model name for references that do not say it.

        Returns:
            The directory.

        Raises:
            RegistryError: nothing by that reference (the message lists what exists), a corrupt
                stored version, an unreachable store.
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
        return self._local_copy(found_name, version)

    def versions(self, name: str = DEFAULT_NAME) -> list[VersionInfo]:
        """Every version of ``name``, oldest first (empty if the model has none)."""
        _check_name(name)
        return [self._info(name, f"v{n}") for n in sorted(self._existing_numbers(name))]

    def show(self, ref: str, *, name: str = DEFAULT_NAME) -> VersionInfo:
        """Details of one version (any reference :meth:`resolve` accepts that lies in the registry)."""
        found_name, version = self._locate(ref, name=name)
        return self._info(found_name, version)

    def file_location(self, info: VersionInfo, relative: str) -> str | None:
        """Where a file of a version is stored (path or URL), None if the version has no such file."""
        key = f"{info.name}/{info.version}/{relative}"
        return self.store.describe(key) if self.store.read(key) is not None else None

    def names(self) -> list[str]:
        """Model names in the registry."""
        return [n for n in self.store.list_dirs("") if _NAME_RE.match(n)]

    def aliases(self, name: str = DEFAULT_NAME) -> dict[str, str]:
        """``{"production": "v2", …}`` for ``name`` (one small read: cheap enough to poll)."""
        _check_name(name)
        return self._aliases(name)

    def gate(self, name: str, version: str) -> GateStatus:
        """Evaluation's gate verdict for a version (``passed=None`` when not evaluated)."""
        key = f"{name}/{version}/{EVALUATION_DIR}/{GATE_FILE}"
        where = self.store.describe(key)
        blob = self.store.read(key)
        if blob is None:
            return GateStatus(None)
        try:
            raw = json.loads(blob.data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RegistryError(f"{where}: corrupt gate file: {e}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("passed"), bool):
            raise RegistryError(f"{where}: gate file must be an object with a boolean 'passed'")
        reasons = raw.get("reasons") or []
        if not isinstance(reasons, list):
            raise RegistryError(f"{where}: 'reasons' must be a list of strings")
        compared = raw.get("compared_to")
        return GateStatus(raw["passed"], tuple(str(r) for r in reasons), str(compared) if compared else None)

    def history(self, name: str = DEFAULT_NAME) -> list[HistoryEntry]:
        """Every recorded change for ``name``, oldest first."""
        _check_name(name)
        entries = []
        for where, line in self.store.read_history(name):
            try:
                raw = json.loads(line)
                entries.append(HistoryEntry(raw["time"], raw["user"], raw["action"], raw["alias"],
                                            raw["from"], raw["to"], raw.get("reason", ""),
                                            bool(raw.get("forced", False))))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise RegistryError(f"{where}: corrupt history line: {e}") from None
        return entries

    # ------------------------------------------------------------------ internals
    def _locate(self, ref: str, *, name: str = DEFAULT_NAME) -> tuple[str, str]:
        """``(name, "v<N>")`` of an existing version named by a registry reference or a path inside it."""
        ref = str(ref).strip()
        match = _REF_RE.match(ref)
        if match is None:
            path = Path(ref).absolute()
            if (path.parent.parent == self.store.local_root and _VERSION_RE.match(path.name)
                    and self.store.is_dir(f"{path.parent.name}/{path.name}")):
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
        if not self.store.is_dir(f"{name}/{version}"):
            raise RegistryError(f"{name}/{version} not found; {self._inventory(name)}")
        return name, version

    def _inventory(self, name: str) -> str:
        """What exists, for error messages."""
        numbers = sorted(self._existing_numbers(name)) if _NAME_RE.match(name) else []
        if not numbers:
            others = [n for n in self.names() if n != name]
            more = f" (models here: {', '.join(others)})" if others else ""
            return f"registry {self.store.location} has no versions of {name!r}{more}"
        aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(self._aliases(name).items())) or "none"
        return (f"registry {self.store.location} has {name} versions {', '.join(f'v{n}' for n in numbers)}; "
                f"aliases: {aliases}")

    def _check_gate_current(self, name: str, target: str, gate: GateStatus, production: str | None) -> None:
        """Refuse a production promotion whose gate compared against a production that has since moved."""
        if not gate.compared_to:
            return
        try:
            compared = "/".join(self._locate(gate.compared_to, name=name))
        except RegistryError:
            logger.warning("gate of %s compared to %r, which is not in the registry; "
                           "not checking that it is current", target, gate.compared_to)
            return
        if production is not None and compared != f"{name}/{production}":
            raise RegistryError(f"{target} was evaluated against {compared}, but production is now "
                                f"{name}/{production}: run `callintent evaluate {target} …` again")

    def _info(self, name: str, version: str) -> VersionInfo:
        key = f"{name}/{version}"
        blob = self.store.read(f"{key}/{META}")
        if blob is None:
            raise RegistryError(f"{self.store.describe(key)}: not a model artifact (no {META})")
        try:
            meta = ArtifactMeta.from_json(blob.data.decode("utf-8", errors="replace"),
                                          self.store.describe(f"{key}/{META}"))
        except UserError as e:
            raise RegistryError(str(e)) from None
        except (TypeError, KeyError) as e:  # fields added or missing by hand
            raise RegistryError(f"{self.store.describe(f'{key}/{META}')}: invalid artifact metadata: {e}") from None
        aliases = tuple(a for a, v in sorted(self._aliases(name).items()) if v == version)
        return VersionInfo(name=name, version=version, path=self.store.local_root / name / version,
                           created_at=meta.created_at, aliases=aliases, metrics=_flatten_numbers(meta.metrics),
                           gate=self.gate(name, version), meta=meta, location=self.store.describe(key))

    def _existing_numbers(self, name: str) -> list[int]:
        return [int(m[1]) for d in self.store.list_dirs(name) if (m := _VERSION_RE.match(d))]

    def _claim_number(self, name: str) -> int:
        """The next version number, recorded in ``last_version`` by a conditional write."""
        key = f"{name}/{COUNTER_FILE}"
        for attempt in range(WRITE_ATTEMPTS):
            blob = self.store.read(key)
            try:
                last = int(blob.data.decode("utf-8").strip()) if blob is not None else 0
            except ValueError:
                raise RegistryError(f"{self.store.describe(key)}: corrupt version counter (expected an integer)"
                                    ) from None
            number = max(last, *self._existing_numbers(name), 0) + 1
            try:
                _write_over(self.store, key, blob, f"{number}\n")
                return number
            except WriteConflict:
                _back_off(attempt)
        raise RegistryError(f"{self.store.describe(key)}: gave up numbering a version after "
                            f"{WRITE_ATTEMPTS} concurrent changes; try again")

    def _aliases(self, name: str) -> dict[str, str]:
        return self._alias_state(name)[0]

    def _alias_state(self, name: str) -> tuple[dict[str, str], int, Blob | None]:
        """``(aliases, events so far, the object as read)``."""
        key = f"{name}/{ALIASES_FILE}"
        blob = self.store.read(key)
        if blob is None:
            return {}, 0, None
        where = self.store.describe(key)
        try:
            raw = json.loads(blob.data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RegistryError(f"{where}: corrupt aliases file: {e}") from None
        events = raw.pop(EVENTS_KEY, 0) if isinstance(raw, dict) else None
        if (not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values())
                or isinstance(events, bool) or not isinstance(events, int)):
            raise RegistryError(f"{where}: aliases must be an object of alias -> version")
        return raw, events, blob

    def _move_alias(self, name: str, alias: str, choose: Callable[[dict[str, str]], str | None], *,
                    action: str, reason: str = "", forced: bool = False) -> tuple[str | None, str] | None:
        """Point ``alias`` where ``choose(current aliases)`` says, and record the event.

        The whole alias object is replaced in one conditional write against the state ``choose``
        saw; if another writer got there first, the state is read again and ``choose`` asked
        again, so no update is lost. The event is numbered by the write that won it.

        Returns:
            ``(previous, new)`` version, or None when ``choose`` said there is nothing to do.
        """
        key = f"{name}/{ALIASES_FILE}"
        for attempt in range(WRITE_ATTEMPTS):
            aliases, events, blob = self._alias_state(name)
            target = choose(aliases)
            if target is None:
                return None
            previous = aliases.get(alias)
            state = {**aliases, alias: target, EVENTS_KEY: events + 1}
            try:
                _write_over(self.store, key, blob, json.dumps(state, indent=2, sort_keys=True) + "\n")
            except WriteConflict:
                logger.info("%s changed while moving %s; reading it again", self.store.describe(key), alias)
                _back_off(attempt)
                continue
            entry = HistoryEntry(_now(), _user(), action, alias, previous, target, reason=reason, forced=forced)
            self.store.add_history(name, events + 1, json.dumps(entry.to_json()))
            return previous, target
        raise RegistryError(f"{self.store.describe(key)}: gave up after {WRITE_ATTEMPTS} concurrent changes; "
                            "try again")

    def _local_copy(self, name: str, version: str) -> Path:
        """The version's local directory: itself (local store), or a verified copy in the cache."""
        local = self.store.local_root / name / version
        if not self.store.remote:
            return local
        key = f"{name}/{version}"
        where = self.store.describe(f"{key}/{MANIFEST}")
        blob = self.store.read(f"{key}/{MANIFEST}")
        if blob is None:
            raise RegistryError(f"{self.store.describe(key)} has no {MANIFEST}: its upload was interrupted "
                                "(or it was not stored by `callintent models register`); register the artifact again")
        try:
            entries = parse_manifest(blob.data.decode("utf-8", errors="replace"), where)
        except ValueError as e:
            raise RegistryError(str(e)) from None
        if local.is_dir():
            bad = mismatches(local, entries)
            if not bad:
                return local
            logger.warning("cached %s: %s do(es) not match %s; downloading the version again",
                           local, ", ".join(bad), where)
        local.parent.mkdir(parents=True, exist_ok=True)
        fresh = local.parent / f".incoming-{uuid.uuid4().hex}"
        stale = local.parent / f".stale-{uuid.uuid4().hex}"
        try:
            self.store.fetch_dir(key, fresh)
            bad = mismatches(fresh, entries)
            if bad:
                raise RegistryError(f"{self.store.describe(f'{key}/{bad[0]}')} does not match its sha256 in {where}: "
                                    f"the stored version is corrupt ({len(bad)} bad file(s): {', '.join(bad)}); "
                                    "refusing to use it")
            if local.exists():
                os.rename(local, stale)
            try:
                os.rename(fresh, local)
            except OSError:  # another process put a copy in place meanwhile
                if mismatches(local, entries):
                    raise
        finally:
            for leftover in (fresh, stale):
                if leftover.exists():
                    shutil.rmtree(leftover, ignore_errors=True)
        logger.info("downloaded %s to %s (%d files verified)", self.store.describe(key), local, len(entries))
        return local


def _write_over(store: RegistryStore, key: str, read: Blob | None, text: str) -> None:
    """Replace ``key`` with ``text`` only if it is still what was ``read`` (absent if None)."""
    store.write(key, text.encode("utf-8"), if_match=read.token if read is not None else None,
                if_absent=read is None)


def _back_off(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # jitter, so retrying writers spread out


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
