"""ServedModel: one model version loaded in the serve process, and the runtime contract.

The lifecycle, driven by :class:`~jupyter_mlplat.serving.repository.ModelRepository`:

1. ``ServedModel(name, version, registry, ...)``: cheap, nothing loaded; ``ready`` is False.
2. ``await load()``: in a thread, :meth:`load_model` (the registry's loader) then :meth:`warm`
   (predict on the stored sample input and compare with the stored sample output). Either
   failing raises :class:`ModelLoadError` and the version never takes traffic. On success
   ``ready`` is True and :attr:`flavor` and :attr:`signature` are set.
3. ``await predict(X)``: any number, concurrently. Each request is checked against the signature
   (:meth:`check`) and predicted through the model's :class:`MicroBatcher` in its worker thread
   (:meth:`predict_batch`).
4. ``await unload()``: waits until the requests that were accepted finished, then stops the
   batcher and drops the model.

Runtimes for other frameworks subclass and override :meth:`load_model`, :meth:`check` and
:meth:`predict_batch` (all synchronous, run off the event loop); the async methods stay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..errors import InvalidSpecError, MLPlatError
from .batching import BatcherClosedError, MicroBatcher

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..tracking.flavors import LoadedModel
    from ..tracking.registry import ModelRegistry

log = logging.getLogger(__name__)


class ModelLoadError(MLPlatError):
    """A model version could not be loaded or did not reproduce its sample output."""


class InferenceError(InvalidSpecError):
    """The model raised on a request that passed the signature check (answered with 400)."""


class ModelFailedError(MLPlatError):
    """The model failed on a request for a server-side reason (memory, a missing library, I/O).

    Answered with 500; the message names the version and the exception type only (the detail
    is logged).
    """


#: Exceptions a model raises on input it cannot handle: the caller's request is at fault (400).
INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)


class ModelUnavailableError(MLPlatError):
    """The model version is not loaded (any more); the request was not run (answered 503)."""


class ServedModel:
    """One model version served by this process.

    Parameters
    ----------
    name : str
        The registered model's name.
    version : int
        Its version.
    registry : ModelRegistry
        Where it is loaded from (owner-scoped).
    trusted : bool
        Passed to :meth:`ModelRegistry.load`: True lets trusted-only formats (cloudpickle) load;
        a shared serve process passes False.
    max_batch, max_wait_ms : int, float
        Micro-batching limits (see :class:`MicroBatcher`).
    on_batch : callable, optional
        ``on_batch(model, version, rows)`` after every predict call (metrics).
    """

    def __init__(self, name: str, version: int, registry: ModelRegistry, *,
                 trusted: bool = True, max_batch: int = 64, max_wait_ms: float = 1.0,
                 on_batch: Callable[[str, int, int], None] | None = None) -> None:
        self.name = name
        self.version = version
        self.registry = registry
        self.trusted = trusted
        self.flavor: str | None = None
        self.signature: dict[str, Any] = {}
        self.ready = False
        self.loaded: LoadedModel | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        hook = None if on_batch is None else (lambda rows: on_batch(name, version, rows))
        self.batcher = MicroBatcher(self.predict_batch, prepare=self.check, max_batch=max_batch,
                                    max_wait_ms=max_wait_ms, name=f"{name}-v{version}",
                                    on_batch=hook)

    @property
    def key(self) -> tuple[str, int]:
        """``(name, version)``."""
        return self.name, self.version

    @property
    def ref(self) -> str:
        """``name@version``: what the ``X-Model-Version`` header carries."""
        return f"{self.name}@{self.version}"

    @property
    def inflight(self) -> int:
        """Requests accepted and not yet answered."""
        return self._inflight

    # -- hooks (synchronous, called off the event loop) ----------------------------------------

    def load_model(self) -> tuple[Any, Any]:
        """Load the model; return ``(sample_input, sample_output)`` to warm it with.

        Sets :attr:`loaded`, :attr:`flavor` and :attr:`signature`. Raises on any failure.
        """
        _, mv = self.registry.resolve(f"{self.name}@{self.version}")
        self.loaded = self.registry.load((self.name, mv), trusted=self.trusted)
        self.flavor = self.loaded.flavor
        self.signature = dict(self.loaded.signature or {})
        return self.registry.sample(mv)

    def warm(self, sample_input: Any, sample_output: Any) -> None:
        """Predict on the sample input; raise ModelLoadError unless it gives the logged output.

        Without a stored sample nothing is checked (and a warning is logged).
        """
        if sample_input is None:
            log.warning("%s has no sample input: served without a warm-up check", self.ref)
            return
        out = self.predict_batch(self.check(sample_input))
        if sample_output is not None and not same_output(out, sample_output):
            raise ModelLoadError(
                f"{self.ref} does not reproduce its logged predictions on its sample input "
                "(a different library version, or a changed artifact); not served"
            )

    def check(self, X: Any) -> Any:
        """``X`` checked against the signature and converted to what the model takes.

        Raises SignatureError (a 400) for input that does not fit.
        """
        if not self.signature.get("inputs"):
            return X
        from ..tracking.signature import check_input

        return check_input(self.signature, X)

    def predict_batch(self, X: Any) -> Any:
        """The model's predictions on a checked batch (called in the batcher's worker thread)."""
        if self.loaded is None:
            raise ModelUnavailableError(f"{self.ref} is not loaded")
        return self.loaded.predict(X)

    # -- lifecycle -----------------------------------------------------------------------------

    async def load(self, timeout: float | None = None) -> None:
        """Load and warm the model in a thread; raise ModelLoadError when it cannot serve.

        Parameters
        ----------
        timeout : float, optional
            Seconds the load and warm-up may take; past it the load fails (the thread is left
            to finish on its own and its result is dropped).
        """
        abandoned = False

        def work() -> None:
            sample_input, sample_output = self.load_model()
            if abandoned:
                return
            self.warm(sample_input, sample_output)

        try:
            await asyncio.wait_for(asyncio.to_thread(work), timeout)
        except TimeoutError:
            abandoned = True
            self.loaded = None
            raise ModelLoadError(f"cannot load {self.ref}: not loaded and warmed within "
                                 f"{timeout:g} s") from None
        except ModelLoadError:
            self.loaded = None
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "do not serve it"
            self.loaded = None
            raise ModelLoadError(f"cannot load {self.ref}: {type(exc).__name__}: {exc}") from exc
        self.ready = True
        log.info("loaded %s (%s)", self.ref, self.flavor)

    async def predict(self, X: Any) -> Any:
        """Predictions for one request ``X`` (rows as a DataFrame, array, records or columns).

        Raises
        ------
        SignatureError
            ``X`` does not fit the signature (the message says what was expected).
        InferenceError
            The model raised on it.
        ModelUnavailableError
            The version was unloaded.
        """
        if self._closing or not self.ready:
            raise ModelUnavailableError(f"{self.ref} is not loaded")
        self._inflight += 1
        self._idle.clear()
        try:
            return await self.batcher.submit(X)
        except BatcherClosedError as exc:
            raise ModelUnavailableError(f"{self.ref}: {exc}") from None
        except MLPlatError:
            raise
        except INPUT_ERRORS as exc:  # the model refused this request's values
            raise InferenceError(f"{self.ref} failed to predict: {type(exc).__name__}: "
                                 f"{str(exc)[:300]}") from exc
        except Exception as exc:  # noqa: BLE001 - a server-side fault, not the caller's
            log.error("%s failed on a request", self.ref, exc_info=exc)
            raise ModelFailedError(f"{self.ref} failed on this request ({type(exc).__name__}); "
                                   "the server logged the details") from exc
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no accepted request is in flight; False when ``timeout`` ran out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def unload(self, timeout: float | None = 60.0) -> None:
        """Stop taking requests, let the accepted ones finish, then free the model."""
        self._closing = True
        if not await self.drain(timeout):
            log.warning("%s unloaded with %d requests still running", self.ref, self._inflight)
        self.batcher.close()
        self.ready = False
        self.loaded = None
        log.info("unloaded %s", self.ref)


def same_output(got: Any, expected: Any) -> bool:
    """Whether two prediction outputs agree (numbers to float tolerance, others exactly)."""
    import numpy as np

    a, b = _as_array(got), _as_array(expected)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        try:
            return bool(np.allclose(a.astype(float), b.astype(float), rtol=1e-4, atol=1e-6,
                                    equal_nan=True))
        except (TypeError, ValueError):
            return False
    return bool(np.array_equal(a, b))


def _as_array(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "to_numpy"):
        return value.to_numpy()
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)
