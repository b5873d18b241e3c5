"""jupyter-mlplat: notebook cells as pipeline steps, run by papermill on Dask.

``import jupyter_mlplat`` stays fast: nothing heavy is imported here. The notebook API
(``mlp.run``, ``mlp.log_metric``, ...) is reached through lazy re-exports below.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt frontend extension."""
    return [{"src": "labextension", "dest": "jupyter-mlplat"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The jupyter-server extension app (imported only when the server loads it)."""
    from .server.extension import MLPlatApp

    return [{"module": "jupyter_mlplat.server.extension", "app": MLPlatApp}]


# Notebook API: lazy re-exports.
# Public name -> module that defines it, e.g. "log_metric": "jupyter_mlplat.tracking.api".
_LAZY: dict[str, str] = {
    "run": "jupyter_mlplat.api",
    "resume": "jupyter_mlplat.api",
    "runs": "jupyter_mlplat.api",
    "get_run": "jupyter_mlplat.api",
    "load_output": "jupyter_mlplat.api",
    "cancel": "jupyter_mlplat.api",
    "log_param": "jupyter_mlplat.tracking.api",
    "log_params": "jupyter_mlplat.tracking.api",
    "log_metric": "jupyter_mlplat.tracking.api",
    "log_metrics": "jupyter_mlplat.tracking.api",
    "log_model": "jupyter_mlplat.tracking.api",
    "log_slices": "jupyter_mlplat.tracking.api",
    "log_eval": "jupyter_mlplat.tracking.api",
    "set_policy": "jupyter_mlplat.tracking.api",
    "set_alias": "jupyter_mlplat.tracking.api",
    "load_model": "jupyter_mlplat.tracking.api",
    "end_run": "jupyter_mlplat.tracking.api",
    "device": "jupyter_mlplat.tracking.api",
    "models": "jupyter_mlplat.api",
    "get_model": "jupyter_mlplat.api",
    "lineage": "jupyter_mlplat.api",
    "compare": "jupyter_mlplat.api",
    "deploy": "jupyter_mlplat.api",
    "batch_predict": "jupyter_mlplat.api",
    "schedule": "jupyter_mlplat.api",
    "share": "jupyter_mlplat.api",
    "shared": "jupyter_mlplat.api",
    "create_project": "jupyter_mlplat.api",
}


def __getattr__(name: str) -> Any:
    if name == "widgets":  # mlp.widgets.runs(), mlp.widgets.deploy()
        return importlib.import_module(".widgets", __name__)
    module_path = _LAZY.get(name)
    if module_path is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_path), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "widgets"})
