"""Typed save/load of step outputs, in formats that load without running code where one exists.

===========================  ===============  ===============================================
value                        format           loaded with
===========================  ===============  ===============================================
JSON-able Python (+ tuples,  ``json``         ``json.loads``; tuples, non-finite floats and
non-str dict keys)                            non-str dict keys are tagged (``json_encode``)
``numpy.ndarray``, scalars   ``npy``          ``np.load(allow_pickle=False)``; scalars as 0-d
``pandas.DataFrame/Series``  ``parquet``      pyarrow; written only if it reads back the same
torch tensors, tensor dicts  ``torch``        ``torch.load(weights_only=True)``
``torch.nn.Module``          ``torchscript``  ``torch.jit.load`` (scripted at save)
scikit-learn objects         ``skops``        ``skops.io.load``, the project's trusted types
anything else                ``cloudpickle``  pickle; ``trusted_only``: its producer only
===========================  ===============  ===============================================

A value whose natural format cannot hold it exactly (an object column, a module TorchScript
cannot compile, a scikit-learn pipeline with a custom class) falls back to cloudpickle, and the
reason is kept in ``ArtifactRef.meta["fallback_reason"]``. numpy, pandas, torch, skops and
cloudpickle are imported only when a value needs them. The formats themselves live in
:mod:`jupyter_mlplat.pipeline.formats`; this module is the public surface and dispatcher.

Same value, same bytes (so cached downstream steps hit), across processes: json, npy, parquet
(for one pyarrow version), torch tensors, and skops after ``canonical_skops`` renumbers its
object ids and fixes its zip timestamps. TorchScript writes a module's constants in set order, so
it is stable only under one ``PYTHONHASHSEED`` (step kernels should pin it). cloudpickle output
is not guaranteed to be stable.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import tempfile
import types
from dataclasses import dataclass, field
from typing import Any

from jupyter_mlplat.errors import NotFoundError, SerializationError, UnsafeArtifactError
from jupyter_mlplat.pipeline.formats import Fallback, Written, plain, sklearn, tabular, tensors
from jupyter_mlplat.store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = (
    "npy",
    "parquet",
    "torch",
    "torchscript",
    "skops",
    "json",
    "cloudpickle",
)
_EXT = {
    "npy": ".npy",
    "parquet": ".parquet",
    "torch": ".pt",
    "torchscript": ".pt",
    "skops": ".skops",
    "json": ".json",
    "cloudpickle": ".pkl",
}
_SUPPORTED = (
    "Outputs must be numpy arrays, pandas DataFrames/Series, torch tensors or modules, "
    "scikit-learn estimators, JSON-able values (None, bool, int, float, str, lists, tuples, "
    "dicts), or objects cloudpickle can serialise"
)
# Tried in order; the first that claims the value writes it (cloudpickle is the last resort).
_WRITERS = (
    plain.try_json,
    tabular.try_numpy,
    tabular.try_pandas,
    tensors.try_torch,
    sklearn.try_skops,
)


@dataclass(frozen=True)
class ArtifactRef:
    """A saved step output: where it is, how it was written and what it was.

    ``format`` is one of :data:`FORMATS`; ``type_name`` is the value's ``module.qualname``;
    ``trusted_only`` means loading it runs code or trusts content from its producer, so only a
    loader that trusts the producer (its owner) may load it; ``meta`` holds format details.
    """

    name: str
    sha256: str
    uri: str
    format: str
    type_name: str
    size: int
    trusted_only: bool
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the form stored in the SQL store and sent over HTTP)."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "uri": self.uri,
            "format": self.format,
            "type_name": self.type_name,
            "size": self.size,
            "trusted_only": self.trusted_only,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        """The inverse of :meth:`to_dict`."""
        fmt = data["format"]
        if fmt not in FORMATS:
            raise SerializationError(f"artifact {data.get('name')!r} has unknown format {fmt!r}")
        return cls(
            name=str(data["name"]),
            sha256=str(data["sha256"]),
            uri=str(data["uri"]),
            format=fmt,
            type_name=str(data["type_name"]),
            size=int(data["size"]),
            trusted_only=bool(data["trusted_only"]),
            meta=dict(data.get("meta") or {}),
        )


def fingerprint(ref: ArtifactRef) -> str:
    """The content hash that step versions use for an input artifact."""
    return ref.sha256


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def _short_type_name(value: Any) -> str:
    name = _type_name(value)
    return name.removeprefix("builtins.")


# -- save ------------------------------------------------------------------------------------


def save_value(value: Any, *, name: str, step: str, store: ArtifactStore) -> ArtifactRef:
    """Save one step output into the artifact store.

    Parameters
    ----------
    value : Any
        The output.
    name : str
        The variable name (recorded on the ref and used in error messages).
    step : str
        The producing step's name (for error messages).
    store : ArtifactStore
        Where the object goes.

    Returns
    -------
    ArtifactRef

    Raises
    ------
    SerializationError
        The value cannot be saved in any format; the message names the variable, its type and
        the step, and says what is supported.
    """
    if isinstance(value, types.ModuleType):
        raise SerializationError(
            f"step {step!r}: cannot save output {name!r} of type module: modules are not step "
            "outputs; import it in the consuming step (or in an `imports` cell)"
        )
    # Stage next to a local store rather than in /tmp, which is often small (containers, pods).
    staging = os.path.join(store.root, ".staging") if store.is_local else None
    if staging:
        os.makedirs(staging, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlplat-save-", dir=staging) as tmp:
        path = os.path.join(tmp, "value")
        written = _write(value, path, name=name, step=step)
        info = store.put_file(path, _EXT[written.format])
    return ArtifactRef(
        name=name,
        sha256=info.sha256,
        uri=info.uri,
        format=written.format,
        type_name=_type_name(value),
        size=info.size,
        trusted_only=written.trusted_only,
        meta=written.meta,
    )


def save_values(
    values: dict[str, Any], *, step: str, store: ArtifactStore
) -> dict[str, ArtifactRef]:
    """Save every output of a step; see :func:`save_value`."""
    return {name: save_value(v, name=name, step=step, store=store) for name, v in values.items()}


def _write(value: Any, path: str, *, name: str, step: str) -> Written:
    reason = None
    try:
        for writer in _WRITERS:
            written = writer(value, path)
            if written is not None:
                return written
    except Fallback as exc:
        reason = str(exc)
        log.info(
            "step %r: output %r (%s) saved with cloudpickle: %s",
            step,
            name,
            _type_name(value),
            reason,
        )
    try:
        plain.write_cloudpickle(value, path)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means "cannot save"
        raise SerializationError(
            f"step {step!r}: cannot save output {name!r} of type {_short_type_name(value)}: "
            f"cloudpickle failed ({type(exc).__name__}: {exc}). {_SUPPORTED}; {_hint(value)}"
        ) from exc
    meta = {"fallback_reason": reason} if reason else {}
    return Written("cloudpickle", trusted_only=True, meta=meta)


def _hint(value: Any) -> str:
    if isinstance(value, io.IOBase):
        return "save its content or its path instead, and reopen it in the consuming step"
    if isinstance(value, (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)) or (
        hasattr(value, "__next__") and hasattr(value, "__iter__")
    ):
        return "make it a list or recompute it in the consuming step"
    return "convert it to one of these types, or create it in the consuming step"


# -- load ------------------------------------------------------------------------------------


def load_value(ref: ArtifactRef, *, store: ArtifactStore, allow_trusted_only: bool = True) -> Any:
    """Load one saved output.

    Parameters
    ----------
    ref : ArtifactRef
        What :func:`save_value` returned.
    store : ArtifactStore
        The store holding the object.
    allow_trusted_only : bool, default True
        Whether the caller trusts the producer of ``ref`` (it is the caller's own output).
        When False, cloudpickle artifacts and skops files that need content-unchecked types
        are refused with :class:`UnsafeArtifactError` before any of their bytes are decoded.

    Returns
    -------
    Any
        The value (a torch module comes back as a TorchScript module).

    Raises
    ------
    UnsafeArtifactError
        Loading would run or trust code the caller does not trust.
    NotFoundError
        The object is not in the store.
    SerializationError
        The object cannot be read as its recorded format.
    """
    fmt = ref.format
    if fmt not in FORMATS:
        raise SerializationError(f"artifact {ref.name!r} has unknown format {fmt!r}")
    if not allow_trusted_only and (fmt == "cloudpickle" or ref.trusted_only):
        raise UnsafeArtifactError(
            f"artifact {ref.name!r} ({ref.type_name}, {fmt}) is trusted-only: loading it would "
            "run or trust code from its producer, which is not allowed here; nothing was loaded"
        )
    try:
        # Located by content, not by ref.uri: the ref may come from another mount of the store.
        uri = store.uri_for(ref.sha256, _EXT[fmt])
    except ValueError as exc:
        raise SerializationError(f"artifact {ref.name!r} has a malformed sha256") from exc
    path = store.local_path(uri)
    try:
        return _read(ref, path, allow_trusted_only)
    except (UnsafeArtifactError, NotFoundError, SerializationError):
        raise
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler refuses anything but tensors and containers
        raise UnsafeArtifactError(
            f"artifact {ref.name!r} ({ref.uri}) holds objects that its format ({fmt}) does not "
            f"allow; nothing was run: {str(exc)[:300]}"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise SerializationError(
            f"cannot load artifact {ref.name!r} ({ref.uri}) as {fmt}: {type(exc).__name__}: {exc}"
        ) from exc


def load_values(
    refs: dict[str, ArtifactRef], *, store: ArtifactStore, allow_trusted_only: bool = True
) -> dict[str, Any]:
    """Load several outputs; see :func:`load_value`."""
    return {
        name: load_value(ref, store=store, allow_trusted_only=allow_trusted_only)
        for name, ref in refs.items()
    }


def _read(ref: ArtifactRef, path: str, allow_trusted_only: bool) -> Any:
    fmt = ref.format
    if fmt == "json":
        return plain.read_json(path)
    if fmt == "npy":
        return tabular.read_npy(path, ref.meta)
    if fmt == "parquet":
        return tabular.read_parquet(path, ref.meta)
    if fmt == "torch":
        return tensors.read_torch(path)
    if fmt == "torchscript":
        return tensors.read_torchscript(path)
    if fmt == "skops":
        return sklearn.load_skops(ref, path, allow_trusted_only)
    assert fmt == "cloudpickle" and allow_trusted_only
    return plain.read_cloudpickle(path)
