"""Saving a model (checked by loading it back), loading it safely, and the loaded wrapper."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
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
from jupyter_mlplat.tracking.flavors import flavor_for, get_flavor  # defined before this loads
from jupyter_mlplat.tracking.flavors.base import MODEL_FORMATS, PICKLE_FORMATS, TASKS, BaseFlavor

log = logging.getLogger(__name__)


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
    artifact: dict[str, Any], flavor: str, *, store: ArtifactStore, trusted: bool,
    by_uri: bool = False,
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
    by_uri : bool
        Read ``artifact["uri"]`` itself (another owner's object that was shared with the
        caller, which is not in the caller's part of the store); it must name the artifact's
        content address.
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
    if by_uri:
        shared = str(artifact.get("uri") or "")
        if not shared.endswith("/" + store.key_for(str(artifact.get("sha256")),
                                                   MODEL_FORMATS[fmt])):
            raise SerializationError(f"model {name!r}: its URI {shared!r} does not name its "
                                     "content address")
        uri = shared
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
