"""The types the project trusts when loading scikit-learn objects with skops.

skops refuses every type that is not on the list passed to ``skops.io.load(trusted=...)``.
This module owns that list; it is never derived from the file being loaded. It has two tiers:

* :data:`SKOPS_TRUSTED_TYPES` (plus every public scikit-learn estimator): types whose loaded
  state is plain data; safe to load from anyone, e.g. in the shared serve process.
* :data:`SKOPS_UNCHECKED_CONTENT_TYPES`: tree and neighbour-search structures whose arrays hold
  raw node indices that scikit-learn follows without bounds checks. A crafted file passes the
  type check and can then crash the process or read out of bounds at predict time (skops'
  ``UNTRUSTED_TYPE_REASONS``). They are trusted only for artifacts whose producer the loader
  already trusts (its own outputs: ``allow_trusted_only=True``), never for other owners'.

To trust a new type: check what ``skops.io.get_untrusted_types`` reports for a model you
built yourself, read how scikit-learn uses the type's state, and add its name to one tier.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from functools import lru_cache

#: Reviewed non-estimator types that common models carry (found with ``get_untrusted_types``
#: on fitted LogisticRegression, RandomForest, GradientBoosting, HistGradientBoosting,
#: Pipeline + StandardScaler + ColumnTransformer + OneHotEncoder, SimpleImputer, MLP, KNN,
#: CalibratedClassifierCV, Voting/Stacking, GridSearchCV, SelectKBest).
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    # numpy: a dtype is rebuilt from an empty array read with allow_pickle=False
    "numpy.dtype",
    # plain-Python helpers held by fitted estimators
    "sklearn.utils._bunch.Bunch",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.metrics._scorer._Scorer",
    "sklearn.metrics._scorer._MultimetricScorer",
    # CV splitters kept by *SearchCV / *CV estimators
    "sklearn.model_selection._split.KFold",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.model_selection._split.GroupKFold",
    "sklearn.model_selection._split.StratifiedGroupKFold",
    "sklearn.model_selection._split.ShuffleSplit",
    "sklearn.model_selection._split.StratifiedShuffleSplit",
    "sklearn.model_selection._split.TimeSeriesSplit",
    "sklearn.model_selection._split.RepeatedKFold",
    "sklearn.model_selection._split.RepeatedStratifiedKFold",
    "sklearn.model_selection._split.PredefinedSplit",
    "sklearn.model_selection._split._CVIterableWrapper",
    # score functions kept by feature selectors (functions, called only by fit)
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
    # distance metrics (a few parameters, no index arrays)
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance32",
    "sklearn.metrics._dist_metrics.ManhattanDistance32",
    "sklearn.metrics._dist_metrics.ChebyshevDistance32",
    "sklearn.metrics._dist_metrics.MinkowskiDistance32",
)

#: Types whose *content* skops cannot check (see the module docstring).
SKOPS_UNCHECKED_CONTENT_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
)


@lru_cache(maxsize=1)
def _estimator_type_names() -> tuple[str, ...]:
    # Imports every scikit-learn estimator module: slow once, so done lazily and cached.
    from sklearn.utils.discovery import all_estimators

    names = {f"{cls.__module__}.{cls.__qualname__}" for _, cls in all_estimators()}
    return tuple(sorted(n for n in names if n.startswith("sklearn.")))


def skops_trusted_types(*, include_unchecked_content: bool = False) -> list[str]:
    """The type names passed as ``trusted`` to ``skops.io.load``.

    Parameters
    ----------
    include_unchecked_content : bool, default False
        Also trust :data:`SKOPS_UNCHECKED_CONTENT_TYPES` (tree models, KD/ball trees). Pass
        True only when the file comes from a producer the caller trusts (its own outputs).

    Returns
    -------
    list of str
        Fully qualified type names, sorted; a new list on each call.
    """
    names = set(_estimator_type_names()) | set(SKOPS_TRUSTED_TYPES)
    if include_unchecked_content:
        names |= set(SKOPS_UNCHECKED_CONTENT_TYPES)
    else:
        # An estimator class is safe to trust; the raw structures listed above are not.
        names -= set(SKOPS_UNCHECKED_CONTENT_TYPES)
    return sorted(names)


def refused_skops_types(found: Iterable[str], *, include_unchecked_content: bool = False
                        ) -> list[str]:
    """The names in ``found`` (what ``skops.io.get_untrusted_types`` reports for a file) that
    the project does not trust; empty when the file may be loaded with ``trusted=found``.

    The same rule as :func:`skops_trusted_types`, decided a name at a time: importing every
    scikit-learn module to list all estimators costs a cold process about two seconds, while a
    model needs a handful of types.
    """
    explicit = set(SKOPS_TRUSTED_TYPES)
    unchecked = set(SKOPS_UNCHECKED_CONTENT_TYPES)
    refused = []
    for name in found:
        if name in unchecked:
            if not include_unchecked_content:
                refused.append(name)
        elif name not in explicit and not _is_public_estimator(name):
            refused.append(name)
    return sorted(refused)


@lru_cache(maxsize=4096)
def _is_public_estimator(name: str) -> bool:
    """Whether ``name`` is a public scikit-learn estimator class (what ``all_estimators``
    lists). Only modules under ``sklearn.`` are imported to find out: installed library code."""
    module, _, qualname = name.rpartition(".")
    parts = module.split(".")
    if (parts[0] != "sklearn" or not qualname.isidentifier()
            or qualname.startswith(("_", "Base"))  # private classes and abstract-ish bases
            or not all(p.isidentifier() for p in parts)
            or {"tests", "externals", "_testing", "_mocking"} & set(parts)):
        return False
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    from sklearn.base import BaseEstimator

    cls = getattr(mod, qualname, None)
    return (isinstance(cls, type) and cls.__module__ == module and issubclass(cls, BaseEstimator)
            and cls is not BaseEstimator and not inspect.isabstract(cls))
