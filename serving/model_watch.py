"""Model updates without a restart: follow a registry alias and hot-swap the model scoring serves.

When ``serve.yaml`` ``model`` names an alias (``production``, ``intent:candidate``), a
:class:`ModelWatch` reads that alias every ``model_watch_seconds`` (``Registry.aliases``: one
small file or object). When it points elsewhere than the version serving, the new version is
fetched (``Registry.resolve``: a local directory, from an object store through the checksummed
cache), loaded with the loader the service starts with, and only once it loaded is it swapped
in (:meth:`serving.scoring.Scoring.swap`): calls already open finish on the model they started
with, new calls and ``/score`` batches get the new one.

A version that fails to load (missing files, a graph ONNX Runtime refuses, a checksum or label
mismatch, an artifact that names another version) is refused: one ERROR line with the reason,
``callintent_model_swap_failures_total`` counts it, the old model keeps serving, and the same
version is tried again only after :data:`RETRY_REFUSED_SECONDS` (or at once when the alias
moves to yet another version).

The watch runs as one asyncio task started with the service; each poll runs in a thread, so
reading the registry and loading a model never block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

from serving.metrics import service_metrics
from serving.scoring import Predictor, Scoring

logger = logging.getLogger(__name__)

#: A refused version is tried again after this long even if the alias still points at it (a
#: half-uploaded artifact may be complete by then); the alias moving is tried at once.
RETRY_REFUSED_SECONDS = 600.0

#: What one poll did.
PollResult = Literal["unchanged", "swapped", "refused", "refused_before", "unset", "unreadable"]


class AliasSource(Protocol):
    """What the watch needs of a registry (:class:`models.registry.Registry`, local or object store)."""

    def aliases(self, name: str = ...) -> dict[str, str]:
        ...

    def resolve(self, ref: str | Path, *, name: str = ...) -> Path:
        ...


class ModelWatch:
    """Follows one registry alias and swaps the model :class:`Scoring` serves when it moves.

    Args:
        registry: Where versions and aliases live.
        name: Model name (``intent``).
        alias: The alias followed (``production``).
        scoring: The one scoring object; its :attr:`~Scoring.model` is what serves now.
        load: Loads a predictor from a local artifact directory (the service's start-up loader);
            raises when the artifact is unusable.
        interval_seconds: Time between polls (> 0).
        retry_seconds: When a refused version may be tried again.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, registry: AliasSource, name: str, alias: str, scoring: Scoring,
                 load: Callable[[Path], Predictor], *, interval_seconds: float,
                 retry_seconds: float = RETRY_REFUSED_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_seconds > 0:
            raise ValueError(f"interval_seconds must be > 0, got {interval_seconds!r}")
        self.registry = registry
        self.name = name
        self.alias = alias
        self.scoring = scoring
        self.load = load
        self.interval_seconds = interval_seconds
        self.retry_seconds = retry_seconds
        self.clock = clock
        #: The last version refused and when it may be tried again.
        self.refused: tuple[str, float] | None = None
        self._unreadable = False
        self._task: asyncio.Task[None] | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.alias}"

    def poll(self) -> PollResult:
        """Read the alias once; when it moved, load its version and swap it in (blocking).

        Returns:
            What happened: ``unchanged`` (the alias names the version serving), ``swapped``,
            ``refused`` (it failed to load now), ``refused_before`` (refused earlier and not due
            for a retry), ``unset`` (the alias points nowhere), ``unreadable`` (the registry
            could not be read; tried again next poll).
        """
        try:
            version = self.registry.aliases(self.name).get(self.alias)
        except Exception as e:  # noqa: BLE001 - an unreachable registry must not stop the watch: next poll
            if not self._unreadable:
                logger.warning("model watch: cannot read %s: %s; %s keeps serving", self.ref, _reason(e),
                               self.scoring.model_id)
            self._unreadable = True
            return "unreadable"
        if self._unreadable:
            logger.info("model watch: %s readable again", self.ref)
            self._unreadable = False
        if version is None:
            return "unset"
        target = f"{self.name}/{version}"
        if target == self.scoring.model_id:
            self.refused = None  # the alias came back: a refused version it moves to again is tried at once
            return "unchanged"
        if self.refused is not None and self.refused[0] == target and self.clock() < self.refused[1]:
            return "refused_before"
        serving = self.scoring.model_id
        started = time.perf_counter()
        try:
            predictor = self.load(self.registry.resolve(target))
            if predictor.model_id != target:
                raise ValueError(f"the artifact says it is {predictor.model_id}")
            model = self.scoring.model_for(predictor)
        except Exception as e:  # noqa: BLE001 - any failure refuses the version; the old model keeps serving
            self.refused = (target, self.clock() + self.retry_seconds)
            service_metrics().model_swap_failures.inc()
            logger.error("model watch: refused %s (%s -> %s): %s; %s keeps serving (retry in %.0f s or when %s "
                         "moves)", target, self.ref, version, _reason(e), serving, self.retry_seconds, self.ref)
            return "refused"
        self.refused = None
        self.scoring.swap(model)
        service_metrics().model_swaps.inc()
        logger.info("model watch: %s moved to %s: now serving %s (loaded in %.1f s; calls already open finish on %s)",
                    self.ref, version, target, time.perf_counter() - started, serving)
        return "swapped"

    async def run(self) -> None:
        """Poll every ``interval_seconds`` until cancelled (each poll in a thread)."""
        while True:
            await asyncio.sleep(self.interval_seconds)
            await asyncio.to_thread(self.poll)

    def start(self) -> None:
        """Start polling on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"model-watch {self.ref}")
            logger.info("model watch: following %s every %g s (serving %s)", self.ref, self.interval_seconds,
                        self.scoring.model_id)

    async def stop(self) -> None:
        """Stop polling (a poll already in its thread finishes there)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def watch_model(ref: str, interval_seconds: float, registry: AliasSource, scoring: Scoring,
                load: Callable[[Path], Predictor]) -> ModelWatch | None:
    """The watch for ``serve.yaml`` ``model``, or None when it is off or ``ref`` is pinned.

    Args:
        ref: ``ServeConfig.model``.
        interval_seconds: ``ServeConfig.model_watch_seconds`` (0 = off).
        registry: The registry the service loaded its model from.
        scoring: The service's scoring.
        load: The service's model loader.
    """
    from models.registry import alias_ref

    followed = alias_ref(ref)
    if not interval_seconds or followed is None:
        if interval_seconds:
            logger.info("model watch: model %r is pinned (not an alias): never swapped", ref)
        return None
    name, alias = followed
    return ModelWatch(registry, name, alias, scoring, load, interval_seconds=interval_seconds)


def _reason(error: BaseException) -> str:
    """One line: the error's message, or its type when it has none."""
    text = " ".join(str(error).split())
    return text if text else type(error).__name__


__all__ = ["RETRY_REFUSED_SECONDS", "ModelWatch", "watch_model"]
