"""Adaptive batching in the worker process, declared on a service method.

``@batched(max_batch_size=…, max_latency_ms=…)`` on a method that takes a list of items and
returns one result per item turns ``await instance.method(item)`` into one item of the next
batch. The batching itself is BentoML's (its ``CorkDispatcher``: the same adaptive algorithm
``@bentoml.api(batchable=True)`` uses, which learns the model's cost per batch and sheds a
request it predicts would miss ``max_latency_ms``), called in process: a request does not go
out through an HTTP client and back in through a second route to reach it.

A shed request raises ``bentoml.exceptions.ServiceUnavailable`` (the routes answer 503
``overloaded`` with ``Retry-After``), exactly as BentoML's own batched endpoints do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from bentoml._internal.marshal.dispatcher import CorkDispatcher
from bentoml.exceptions import ServiceUnavailable

T = TypeVar("T")
R = TypeVar("R")


def _shed() -> Any:
    raise ServiceUnavailable("process is overloaded")


class AdaptiveBatcher(Generic[T, R]):
    """Gathers concurrent single calls into batches of ``fn`` (a blocking function: it runs in a thread).

    Args:
        fn: ``fn(items) -> results``, one result per item, in order.
        max_batch_size: Most items one call of ``fn`` gets.
        max_latency_ms: A request predicted to wait longer than this is shed.
        on_batch: Called with each batch's size (a metrics histogram's ``observe``).
    """

    def __init__(self, fn: Callable[[Sequence[T]], Sequence[R]], *, max_batch_size: int, max_latency_ms: int,
                 on_batch: Callable[[int], Any] | None = None) -> None:
        self._fn = fn
        self._on_batch = on_batch
        self._dispatcher: CorkDispatcher[T, R] = CorkDispatcher(
            max_latency_in_ms=max_latency_ms, max_batch_size=max_batch_size, fallback=_shed,
            get_batch_size=lambda _: 1)
        self._call = self._dispatcher(self._run)

    def _run(self, items: Sequence[T]) -> Sequence[R]:
        if self._on_batch is not None:
            self._on_batch(len(items))
        return self._fn(items)

    async def __call__(self, item: T) -> R:
        """The result for ``item``, computed in a batch with whatever else is waiting."""
        return await self._call(item)  # type: ignore[return-value]

    def close(self) -> None:
        """Stop dispatching; requests still waiting are cancelled."""
        self._dispatcher.shutdown()


class batched:  # noqa: N801 (a decorator, named like one)
    """Declare adaptive batching on a method ``(self, items) -> results``.

    On an instance the attribute becomes that instance's :class:`AdaptiveBatcher` (made on first
    use, so it belongs to the event loop that serves the requests).

    Args:
        max_batch_size: Most items per model run.
        max_latency_ms: Shed requests predicted to wait longer.
        on_batch: Optional ``(instance, size)`` callback per batch.
    """

    def __init__(self, *, max_batch_size: int, max_latency_ms: int,
                 on_batch: Callable[[Any, int], Any] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.on_batch = on_batch
        self.fn: Callable[..., Sequence[Any]] | None = None
        self.name = ""

    def __call__(self, fn: Callable[..., Sequence[Any]]) -> batched:
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]
        return self

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        assert self.fn is not None, "@batched(...) must decorate a method"
        on_batch = functools.partial(self.on_batch, instance) if self.on_batch else None
        batcher = AdaptiveBatcher(functools.partial(self.fn, instance), max_batch_size=self.max_batch_size,
                                  max_latency_ms=self.max_latency_ms, on_batch=on_batch)
        instance.__dict__[self.name] = batcher  # a non-data descriptor: the instance's batcher wins from now on
        return batcher


__all__ = ["AdaptiveBatcher", "batched"]
