"""scikit-learn estimators (pipelines included) as skops files, loaded with the trusted list.

The types a file may hold come from :mod:`jupyter_mlplat.tracking.trust`, never from the file.
An estimator that needs anything else (a pipeline holding a custom transformer, a subclass
defined in a notebook) cannot be loaded safely by anyone but its producer, so :meth:`save`
raises :class:`~jupyter_mlplat.pipeline.formats.Fallback` and it is saved as ``pyfunc``.
"""

from __future__ import annotations

import sys
from typing import Any

from jupyter_mlplat.pipeline.formats import Fallback
from jupyter_mlplat.tracking.flavors.base import BaseFlavor


class SklearnFlavor(BaseFlavor):
    """Any ``sklearn.base.BaseEstimator``, saved with skops."""

    name = "sklearn"
    trusted_only = False
    formats = ("skops",)
    priority = 10

    def matches(self, model: Any) -> bool:
        """Whether ``model`` is a scikit-learn estimator (without importing scikit-learn)."""
        base = sys.modules.get("sklearn.base")
        return base is not None and isinstance(model, base.BaseEstimator)

    def save(
        self, model: Any, path: str, sample_input: Any, *, task: str | None = None
    ) -> dict[str, Any]:
        """Write ``model`` as a canonical skops file; see :meth:`BaseFlavor.save`.

        Raises
        ------
        Fallback
            The estimator is not scikit-learn's own class, or skops would need types outside
            the project's trusted list.
        """
        from sklearn.base import is_classifier, is_regressor

        from jupyter_mlplat.pipeline.formats.sklearn import try_skops

        written = try_skops(model, path)
        if written is None:
            t = type(model)
            raise Fallback(
                f"{t.__module__}.{t.__qualname__} is not a scikit-learn class, so skops cannot "
                "load it with the project's trusted types"
            )
        if task is None:
            task = (
                "classification"
                if is_classifier(model)
                else "regression"
                if is_regressor(model)
                else None
            )
        return {
            "format": "skops",
            "trusted_only": written.trusted_only,
            "unchecked_types": written.meta.get("unchecked_types", []),
            "task": task,
        }

    def load(self, path: str, meta: dict[str, Any], *, trusted: bool) -> Any:
        """Read a skops file, refusing any type outside the trusted list before decoding.

        With ``trusted=False`` the tree and neighbour structures (whose content skops cannot
        check) are refused too; see :mod:`jupyter_mlplat.tracking.trust`.
        """
        from jupyter_mlplat.pipeline.formats.sklearn import read_skops

        return read_skops(path, allow_trusted_only=trusted, what="the skops model file")

    def predict(self, model: Any, X: Any, *, meta: dict[str, Any] | None = None) -> Any:
        """``model.predict(X)``."""
        return model.predict(X)

    def predict_proba(
        self, model: Any, X: Any, *, meta: dict[str, Any] | None = None
    ) -> Any | None:
        """``model.predict_proba(X)``, or None when the estimator has none."""
        # hasattr is False for a Pipeline whose last step lacks predict_proba (available_if)
        if not hasattr(model, "predict_proba"):
            return None
        return model.predict_proba(X)

