"""Model flavours: how a kind of model is saved, loaded safely and asked for predictions.

=========  ===============================  =================================  ==============
flavour    models                           format                             trusted-only
=========  ===============================  =================================  ==============
sklearn    scikit-learn estimators          ``skops`` (project's trusted list) tree models [1]
torch      ``torch.nn.Module``              ``torchscript``, ``torch_export``  torch_export
pyfunc     anything with ``predict`` or     ``cloudpickle``                    always
           ``predict_proba``
=========  ===============================  =================================  ==============

[1] scikit-learn tree and neighbour structures hold raw node indices that skops cannot check
(see :mod:`jupyter_mlplat.tracking.trust`). ``torch.export.load`` unpickles with
``weights_only=False``, so exported programs are trusted-only too. A trusted-only artifact is
loaded only by a caller that trusts its producer (``trusted=True``: its owner); for anyone else
it is refused before a byte of it is read.

Flavours are found through the ``jupyter_mlplat.flavors`` entry-point group, read on first
use (never at import); the three built-ins are registered directly if their entry points are
missing (a source checkout that was not reinstalled). :func:`save_model` saves a model, loads
it back and checks that the copy predicts what the original does before anyone relies on it.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from jupyter_mlplat.errors import (
    InvalidSpecError,
    NotFoundError,
    SerializationError,
    UnsafeArtifactError,
)
from jupyter_mlplat.pipeline.formats import Fallback
from jupyter_mlplat.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jupyter_mlplat.flavors"

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


# -- registry --------------------------------------------------------------------------------

_REGISTRY: dict[str, BaseFlavor] = {}
_LOADED = False
_LOCK = threading.RLock()


def register(flavor: BaseFlavor) -> None:
    """Register a flavour under ``flavor.name`` (replacing one of the same name).

    Parameters
    ----------
    flavor : BaseFlavor
        An instance.
    """
    if not isinstance(flavor, BaseFlavor) or not flavor.name:
        raise InvalidSpecError(f"not a named BaseFlavor instance: {flavor!r}")
    with _LOCK:
        _REGISTRY[flavor.name] = flavor


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _REGISTRY:  # registered explicitly: that one wins
                continue
            try:
                obj = ep.load()
                flavor = obj() if isinstance(obj, type) else obj
                register(flavor)
            except Exception:  # noqa: BLE001 - one broken plugin must not break the others
                log.warning("cannot load model flavour entry point %r", ep.value, exc_info=True)
        # A source checkout whose package metadata predates the entry points still works.
        from jupyter_mlplat.tracking.flavors.pyfunc import PyfuncFlavor
        from jupyter_mlplat.tracking.flavors.sklearn import SklearnFlavor
        from jupyter_mlplat.tracking.flavors.torch import TorchFlavor

        for cls in (SklearnFlavor, TorchFlavor, PyfuncFlavor):
            if cls.name not in _REGISTRY:
                _REGISTRY[cls.name] = cls()
        _LOADED = True


def flavors() -> list[BaseFlavor]:
    """The registered flavours, in the order :func:`flavor_for` asks them."""
    _ensure_loaded()
    with _LOCK:
        return sorted(_REGISTRY.values(), key=lambda f: (f.priority, f.name))


def get_flavor(name: str) -> BaseFlavor:
    """The flavour registered as ``name``.

    Raises
    ------
    InvalidSpecError
        No such flavour; the message names the known ones.
    """
    _ensure_loaded()
    with _LOCK:
        flavor = _REGISTRY.get(name)
        known = sorted(_REGISTRY)
    if flavor is None:
        raise InvalidSpecError(f"unknown model flavour {name!r}; known flavours: {known}")
    return flavor


def flavor_for(model: Any) -> BaseFlavor:
    """The flavour that saves ``model``: sklearn, then torch, then pyfunc (the catch-all).

    Raises
    ------
    InvalidSpecError
        No flavour takes it; the message says what is supported.
    """
    for flavor in flavors():
        if flavor.matches(model):
            return flavor
    t = type(model)
    raise InvalidSpecError(
        f"cannot save a model of type {t.__module__}.{t.__qualname__}: supported are "
        "scikit-learn estimators, torch.nn.Module, and any object with a predict or "
        f"predict_proba method (flavours: {[f.name for f in flavors()]})"
    )


# -- save and load ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedModel:
    """A saved model: its flavour, its file, its signature and its sample input and output.

    ``artifact`` has the keys of ``ArtifactRef.to_dict()`` (``name``, ``sha256``, ``uri``,
    ``format``, ``type_name``, ``size``, ``trusted_only``, ``meta``); ``sample_input`` and
    ``sample_output`` are ``ArtifactRef`` dicts of values saved with
    :func:`jupyter_mlplat.pipeline.marshal.save_value`.
    """

    flavor: str
    artifact: dict[str, Any]
    signature: dict[str, Any]
    sample_input: dict[str, Any] | None
    sample_output: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "flavor": self.flavor,
            "artifact": dict(self.artifact),
            "signature": dict(self.signature),
            "sample_input": self.sample_input,
            "sample_output": self.sample_output,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SavedModel:
        """The inverse of :meth:`to_dict`."""
        return cls(
            flavor=str(data["flavor"]),
            artifact=dict(data["artifact"]),
            signature=dict(data.get("signature") or {}),
            sample_input=data.get("sample_input"),
            sample_output=data.get("sample_output"),
        )


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def save_model(
    model: Any,
    *,
    name: str,
    sample_input: Any = None,
    store: ArtifactStore,
    flavor: str | None = None,
    task: str | None = None,
) -> SavedModel:
    """Save a model, load it back, and check that the copy predicts what the model does.

    Parameters
    ----------
    model : Any
        A scikit-learn estimator, a ``torch.nn.Module`` or an object with ``predict`` or
        ``predict_proba``.
    name : str
        The model's name (recorded on the artifacts and used in messages).
    sample_input : Any, optional
        A small batch of real input. It gives the signature and the sample output, is what the
        loaded copy is checked on, and is what tracing and ``torch.export`` run. Without it the
        signature is ``{}`` and nothing is checked.
    store : ArtifactStore
        Where the files go.
    flavor : str, optional
        A registered flavour name; default: :func:`flavor_for`.
    task : {"classification", "regression"}, optional
        What the model's output means (torch: logits or values); default: inferred.

    Returns
    -------
    SavedModel

    Raises
    ------
    InvalidSpecError
        Unknown flavour, a flavour that does not take this model, or a bad ``task``.
    SerializationError
        The model cannot be saved, or the loaded copy predicts something else on
        ``sample_input`` (the message says what differs).
    """
    if task is not None and task not in TASKS:
        raise InvalidSpecError(f"task must be one of {list(TASKS)} or None, not {task!r}")
    fl = flavor_for(model) if flavor is None else get_flavor(flavor)
    if not fl.matches(model):
        raise InvalidSpecError(
            f"model {name!r} of type {_type_name(model)} is not a {fl.name!r} model"
        )
    # Stage next to a local store rather than in /tmp, which is often small (containers, pods).
    staging = os.path.join(store.root, ".staging") if store.is_local else None
    if staging:
        os.makedirs(staging, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlplat-model-", dir=staging) as tmp:
        path = os.path.join(tmp, "model")
        try:
            meta = dict(fl.save(model, path, sample_input, task=task))
        except Fallback as exc:
            reason = str(exc)
            log.info("model %r (%s) saved as pyfunc: %s", name, _type_name(model), reason)
            fl = get_flavor("pyfunc")
            meta = dict(fl.save(model, path, sample_input, task=task))
            meta["fallback_reason"] = reason
        fmt = meta.get("format")
        if fmt not in fl.formats or fmt not in MODEL_FORMATS:
            raise SerializationError(
                f"flavour {fl.name!r} wrote model {name!r} in format {fmt!r}, which it does not "
                f"declare ({list(fl.formats)})"
            )
        trusted_only = bool(fl.trusted_only or meta.get("trusted_only") or fmt in PICKLE_FORMATS)
        meta["trusted_only"] = trusted_only
        sample_output = None
        if sample_input is not None:
            # The copy is read back from the very file stored below, before anyone relies on it.
            loaded = _load_checked(fl, path, meta, name=name, trusted=True)
            mismatch = fl.compare(model, loaded, sample_input, meta=meta)
            if mismatch:
                hint = _mismatch_hint(meta)
                raise SerializationError(
                    f"model {name!r} ({_type_name(model)}) was saved as {fl.name}/{fmt}, but the "
                    f"saved copy does not reproduce it on the sample input: {mismatch}{hint}"
                )
            sample_output = fl.predict(model, sample_input, meta=meta)
        info = store.put_file(path, MODEL_FORMATS[fmt])

    from jupyter_mlplat.pipeline.marshal import save_value
    from jupyter_mlplat.tracking.signature import infer_signature

    artifact = {
        "name": name,
        "sha256": info.sha256,
        "uri": info.uri,
        "format": fmt,
        "type_name": _type_name(model),
        "size": info.size,
        "trusted_only": trusted_only,
        "meta": meta,
    }
    in_ref = out_ref = None
    signature: dict[str, Any] = {}
    if sample_input is not None:
        signature = infer_signature(sample_input, sample_output)
        step = f"model {name}"
        in_ref = save_value(sample_input, name=f"{name}.sample_input", step=step, store=store)
        out_ref = save_value(sample_output, name=f"{name}.sample_output", step=step, store=store)
    return SavedModel(
        flavor=fl.name,
        artifact=artifact,
        signature=signature,
        sample_input=None if in_ref is None else in_ref.to_dict(),
        sample_output=None if out_ref is None else out_ref.to_dict(),
    )


def _mismatch_hint(meta: dict[str, Any]) -> str:
    method = meta.get("method")
    if method == "trace":
        warned = meta.get("trace_warnings") or []
        tail = f" Tracer warnings: {'; '.join(warned)}" if warned else ""
        return (
            ". TorchScript could not compile the module, so it was traced on the sample input, "
            "which records one path through data-dependent control flow (if/for on tensor "
            "values) and bakes in shapes; make forward() scriptable (torch.jit.script) or use "
            f"torch.cond for data-dependent branches.{tail}"
        )
    if method == "export":
        return (
            ". The module was saved with torch.export, which specialises on the sample input's "
            "shapes and values where the code depends on them; pass a larger, representative "
            "sample_input or make forward() scriptable"
        )
    return ""


def load_model_artifact(
    artifact: dict[str, Any], flavor: str, *, store: ArtifactStore, trusted: bool
) -> Any:
    """Load the model of a :class:`SavedModel` (its ``artifact`` dict) as its native object.

    Parameters
    ----------
    artifact : dict
        ``SavedModel.artifact``.
    flavor : str
        ``SavedModel.flavor``.
    store : ArtifactStore
        The store holding it; the file is found by its sha256, not by ``artifact["uri"]``
        (which may name another mount of the store).
    trusted : bool
        Whether the caller trusts the model's producer (it is the caller's own model). When
        False, trusted-only artifacts (pickle-based formats, tree models) are refused before
        any byte is read, and skops files are checked against the safe tier only.

    Returns
    -------
    Any
        The native model: a scikit-learn estimator, a TorchScript module or an exported
        ``torch.fx.GraphModule``, or the unpickled object.

    Raises
    ------
    UnsafeArtifactError
        Loading would run or trust code the caller does not trust; nothing was loaded.
    NotFoundError
        The file is not in the store.
    SerializationError
        The artifact is malformed or cannot be read as its format.
    """
    fl = get_flavor(flavor)
    name = artifact.get("name", "?")
    fmt = artifact.get("format")
    if fmt not in MODEL_FORMATS or fmt not in fl.formats:
        raise SerializationError(
            f"model {name!r}: format {fmt!r} is not one the {fl.name!r} flavour reads "
            f"({list(fl.formats)})"
        )
    meta = dict(artifact.get("meta") or {})
    meta["format"] = fmt  # the format the file is read as is the checked one, not meta's copy
    if not trusted and (
        fl.trusted_only
        or fmt in PICKLE_FORMATS
        or artifact.get("trusted_only")
        or meta.get("trusted_only")
    ):
        raise UnsafeArtifactError(
            f"model {name!r} ({artifact.get('type_name')}, {fl.name}/{fmt}) is trusted-only: "
            "loading it would run or trust code from its producer, which is not allowed here; "
            "nothing was loaded"
        )
    try:
        uri = store.uri_for(str(artifact.get("sha256")), MODEL_FORMATS[fmt])
    except ValueError as exc:
        raise SerializationError(f"model {name!r} has a malformed sha256") from exc
    path = store.local_path(uri)
    return _load_checked(fl, path, meta, name=name, trusted=trusted)


def _load_checked(
    fl: BaseFlavor, path: str, meta: dict[str, Any], *, name: str, trusted: bool
) -> Any:
    try:
        return fl.load(path, meta, trusted=trusted)
    except (UnsafeArtifactError, NotFoundError, SerializationError):
        raise
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler refuses anything but tensors and containers
        raise UnsafeArtifactError(
            f"model {name!r} holds objects that its format ({meta.get('format')}) does not "
            f"allow; nothing was run: {str(exc)[:300]}"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise SerializationError(
            f"cannot load model {name!r} as {fl.name}/{meta.get('format')}: "
            f"{type(exc).__name__}: {str(exc)[:500]}"
        ) from exc


class LoadedModel:
    """A loaded model with its flavour and signature: what the registry and serving use.

    Parameters
    ----------
    model : Any
        The native model.
    flavor : str or BaseFlavor
        Its flavour.
    signature : dict, optional
        Its signature; when it has inputs, requests are checked and converted with
        :func:`jupyter_mlplat.tracking.signature.check_input` before predicting.
    meta : dict, optional
        The artifact's meta (torch reads ``task`` and ``input_dtype`` from it).
    """

    def __init__(
        self,
        model: Any,
        flavor: str | BaseFlavor,
        signature: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self._flavor = flavor if isinstance(flavor, BaseFlavor) else get_flavor(flavor)
        self.model = model
        self.flavor: str = self._flavor.name
        self.signature: dict[str, Any] = dict(signature or {})
        self.meta: dict[str, Any] = dict(meta or {})

    @classmethod
    def load(
        cls, saved: SavedModel | dict[str, Any], *, store: ArtifactStore, trusted: bool
    ) -> LoadedModel:
        """Load a :class:`SavedModel` (or its dict form); see :func:`load_model_artifact`."""
        if isinstance(saved, dict):
            saved = SavedModel.from_dict(saved)
        model = load_model_artifact(saved.artifact, saved.flavor, store=store, trusted=trusted)
        return cls(model, saved.flavor, saved.signature, saved.artifact.get("meta"))

    def _check(self, X: Any) -> Any:
        if not self.signature.get("inputs"):
            return X
        from jupyter_mlplat.tracking.signature import check_input

        return check_input(self.signature, X)

    def predict(self, X: Any) -> Any:
        """Predictions for ``X`` (checked against the signature first).

        Raises
        ------
        SignatureError
            ``X`` does not match the signature.
        """
        return self._flavor.predict(self.model, self._check(X), meta=self.meta)

    def predict_proba(self, X: Any) -> Any | None:
        """Class probabilities for ``X``, or None when the model has none."""
        return self._flavor.predict_proba(self.model, self._check(X), meta=self.meta)

    def __repr__(self) -> str:
        return f"<LoadedModel {self.flavor} {type(self.model).__name__}>"


__all__ = [
    "ENTRY_POINT_GROUP",
    "MODEL_FORMATS",
    "BaseFlavor",
    "LoadedModel",
    "SavedModel",
    "describe_difference",
    "flavor_for",
    "flavors",
    "get_flavor",
    "load_model_artifact",
    "register",
    "save_model",
]
