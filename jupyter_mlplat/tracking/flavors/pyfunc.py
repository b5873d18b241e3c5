"""Any object with ``predict`` or ``predict_proba``, pickled with cloudpickle.

Loading a pickle runs whatever code its producer put in it, so these artifacts are
trusted-only: only a loader that trusts the producer (its owner) may load them, and the check
happens before a byte is read.
"""

from __future__ import annotations

from typing import Any

from jupyter_mlplat.errors import UnsafeArtifactError
from jupyter_mlplat.tracking.flavors.base import BaseFlavor


class PyfuncFlavor(BaseFlavor):
    """The catch-all flavour: cloudpickle, trusted-only."""

    name = "pyfunc"
    trusted_only = True
    formats = ("cloudpickle",)
    priority = 100

    def matches(self, model: Any) -> bool:
        """Whether ``model`` has a callable ``predict`` or ``predict_proba``."""
        return callable(getattr(model, "predict", None)) or callable(
            getattr(model, "predict_proba", None)
        )

    def save(
        self, model: Any, path: str, sample_input: Any, *, task: str | None = None
    ) -> dict[str, Any]:
        """Pickle ``model`` with cloudpickle; see :meth:`BaseFlavor.save`."""
        from jupyter_mlplat.errors import SerializationError
        from jupyter_mlplat.pipeline.formats.plain import write_cloudpickle

        try:
            write_cloudpickle(model, path)
        except Exception as exc:  # noqa: BLE001 - any pickling failure means "cannot save"
            t = type(model)
            raise SerializationError(
                f"cannot pickle model of type {t.__module__}.{t.__qualname__}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if task is None and callable(getattr(model, "predict_proba", None)):
            task = "classification"
        return {"format": "cloudpickle", "trusted_only": True, "task": task}

    def load(self, path: str, meta: dict[str, Any], *, trusted: bool) -> Any:
        """Unpickle ``path``; refused with :class:`UnsafeArtifactError` unless ``trusted``."""
        if not trusted:
            raise UnsafeArtifactError(
                "pyfunc models are pickles: loading one runs its producer's code, which is "
                "allowed only for a producer you trust; nothing was loaded"
            )
        from jupyter_mlplat.pipeline.formats.plain import read_cloudpickle

        return read_cloudpickle(path)

    def predict(self, model: Any, X: Any, *, meta: dict[str, Any] | None = None) -> Any:
        """``model.predict(X)``; for a model with only ``predict_proba``, the likeliest class
        (``model.classes_[argmax]`` when it has ``classes_``, else the column index)."""
        if callable(getattr(model, "predict", None)):
            return model.predict(X)
        import numpy as np

        best = np.asarray(model.predict_proba(X)).argmax(axis=1)
        classes = getattr(model, "classes_", None)
        return np.asarray(classes)[best] if classes is not None else best

    def predict_proba(
        self, model: Any, X: Any, *, meta: dict[str, Any] | None = None
    ) -> Any | None:
        """``model.predict_proba(X)``, or None when the model has none."""
        method = getattr(model, "predict_proba", None)
        return method(X) if callable(method) else None
