"""Model flavours: how a kind of model is saved, loaded safely and asked for predictions.

=========  ===============================  =================================  ==============
flavour    models                           format                             trusted-only
=========  ===============================  =================================  ==============
sklearn    scikit-learn estimators          ``skops`` (project's trusted list) tree models [1]
torch      ``torch.nn.Module``              ``torchscript``, ``torch_export``  always [2]
pyfunc     anything with ``predict`` or     ``cloudpickle``                    always
           ``predict_proba``
=========  ===============================  =================================  ==============

[1] scikit-learn tree and neighbour structures hold raw node indices that skops cannot check
(see :mod:`jupyter_mlplat.tracking.trust`). [2] ``torch.export.load`` unpickles with
``weights_only=False``, and a TorchScript program may call torch operators that read files
(``torch.from_file``), so both torch forms are trusted-only. A trusted-only artifact is
loaded only by a caller that trusts its producer (``trusted=True``: its owner); for anyone else
it is refused before a byte of it is read.

Flavours are found through the ``jupyter_mlplat.flavors`` entry-point group, read on first
use (never at import); the three built-ins are registered directly if their entry points are
missing (a source checkout that was not reinstalled). :func:`save_model` saves a model, loads
it back and checks that the copy predicts what the original does before anyone relies on it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.tracking.flavors.base import (
    MODEL_FORMATS,
    PICKLE_FORMATS,
    TASKS,
    BaseFlavor,
    describe_difference,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jupyter_mlplat.flavors"


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


# The save/load functions live in .models; re-exported here, the flavours' public surface.
from jupyter_mlplat.tracking.flavors.models import (  # noqa: E402
    LoadedModel,
    SavedModel,
    load_model_artifact,
    save_model,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODEL_FORMATS",
    "PICKLE_FORMATS",
    "TASKS",
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
