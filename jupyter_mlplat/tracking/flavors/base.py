"""The flavour contract (:class:`BaseFlavor`) and what every flavour shares."""

from __future__ import annotations

from typing import Any

#: File extension of each model format in the artifact store.
MODEL_FORMATS: dict[str, str] = {
    "skops": ".skops",
    "torchscript": ".pt",
    "torch_export": ".pt2",
    "cloudpickle": ".pkl",
}
#: Formats whose loader runs pickle (producer code), whatever an artifact dict claims.
PICKLE_FORMATS: frozenset[str] = frozenset({"cloudpickle", "torch_export"})
TASKS: tuple[str, ...] = ("classification", "regression")


class BaseFlavor:
    """How one kind of model is saved, loaded and asked for predictions.

    Subclasses set :attr:`name`, :attr:`formats` (the formats their :meth:`save` writes and
    :meth:`load` reads) and :attr:`trusted_only`, and implement the methods. :meth:`save` may
    raise :class:`~jupyter_mlplat.pipeline.formats.Fallback` when the model is of its kind but
    cannot be saved safely; :func:`save_model` then saves it as ``pyfunc``.
    """

    name: str = ""
    #: Loading runs producer code (pickle): only a loader that trusts the producer may load.
    trusted_only: bool = False
    #: Formats this flavour writes and reads.
    formats: tuple[str, ...] = ()
    #: Order in :func:`flavor_for`: lower is asked first (pyfunc, the catch-all, is last).
    priority: int = 50

    def matches(self, model: Any) -> bool:
        """Whether ``model`` is of this flavour's kind."""
        raise NotImplementedError

    def save(
        self, model: Any, path: str, sample_input: Any, *, task: str | None = None
    ) -> dict[str, Any]:
        """Write ``model`` to the file ``path``.

        Parameters
        ----------
        model : Any
            The model.
        path : str
            The file to write (its folder exists).
        sample_input : Any
            A batch the model accepts, or None (some flavours need one).
        task : {"classification", "regression"}, optional
            What the model's output means, where the flavour cannot tell.

        Returns
        -------
        dict
            JSON-able meta: at least ``format`` (one of :attr:`formats`); ``trusted_only``
            when this file needs it although the flavour does not; ``task`` when known.
        """
        raise NotImplementedError

    def load(self, path: str, meta: dict[str, Any], *, trusted: bool) -> Any:
        """Read a file written by :meth:`save`; the native model.

        Raises :class:`UnsafeArtifactError` before decoding anything that ``trusted=False``
        does not allow.
        """
        raise NotImplementedError

    def predict(self, model: Any, X: Any, *, meta: dict[str, Any] | None = None) -> Any:
        """Predictions for the batch ``X`` (a numpy array, or pandas)."""
        raise NotImplementedError

    def predict_proba(
        self, model: Any, X: Any, *, meta: dict[str, Any] | None = None
    ) -> Any | None:
        """Class probabilities ``(n, k)`` for ``X``, or None when the model has none."""
        raise NotImplementedError

    def compare(
        self, original: Any, loaded: Any, X: Any, *, meta: dict[str, Any] | None = None
    ) -> str | None:
        """Whether ``loaded`` predicts exactly what ``original`` does on ``X``.

        Returns
        -------
        str or None
            None when they agree, else what differs (for an error message).
        """
        expected, got = self.predict(original, X, meta=meta), self.predict(loaded, X, meta=meta)
        diff = describe_difference(expected, got)
        if diff:
            return f"predictions differ: {diff}"
        expected_p = self.predict_proba(original, X, meta=meta)
        got_p = self.predict_proba(loaded, X, meta=meta)
        if (expected_p is None) != (got_p is None):
            return "one of the two has predict_proba and the other has not"
        if expected_p is not None:
            diff = describe_difference(expected_p, got_p)
            if diff:
                return f"probabilities differ: {diff}"
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def describe_difference(
    expected: Any, got: Any, *, rtol: float = 0.0, atol: float = 0.0
) -> str | None:
    """None if ``got`` equals ``expected`` (within tolerances), else a short description.

    Parameters
    ----------
    expected, got : Any
        Arrays, pandas objects or array-likes.
    rtol, atol : float, default 0
        Tolerances for floating-point values; 0 means exact equality (NaN equals NaN).

    Returns
    -------
    str or None
    """
    import numpy as np

    a, b = _as_array(expected), _as_array(got)
    if a.shape != b.shape:
        return f"shape {list(b.shape)} instead of {list(a.shape)}"
    if a.dtype.kind in "fc" and b.dtype.kind in "fciub":
        same = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    elif a.dtype.kind in "iub" and b.dtype.kind in "fciub":
        same = np.isclose(a, b, rtol=rtol, atol=atol) if (rtol or atol) else a == b
    else:
        same = np.asarray(a == b)
        if same.shape != a.shape:
            return f"values of type {b.dtype} cannot be compared with {a.dtype}"
    same = np.asarray(same)
    if same.all():
        return None
    bad = np.argwhere(~same)
    first = tuple(int(i) for i in bad[0])
    where = first[0] if len(first) == 1 else first
    want, got_ = (_scalar(v[first]) for v in (a, b))
    detail = f"{bad.shape[0]} of {a.size} values differ; first at {where}: {want!r} vs {got_!r}"
    if a.dtype.kind in "fc" and b.dtype.kind in "fciub":
        err = float(np.nanmax(np.abs(a.astype(float) - b.astype(float))))
        detail += f" (largest difference {err:.3g})"
    return detail


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _as_array(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "to_numpy"):
        return value.to_numpy()
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


