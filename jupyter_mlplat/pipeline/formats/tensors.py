"""torch tensors (and containers of them) with ``torch.save``, modules as TorchScript."""

from __future__ import annotations

import collections
import sys
import warnings
from typing import Any

from jupyter_mlplat.pipeline.formats import Fallback, Written


def _is_tensor_tree(value: Any, torch: Any, depth: int = 0) -> tuple[bool, bool]:
    """(only tensors / primitives / containers, at least one tensor)."""
    if depth > 50:
        return False, False
    t = type(value)
    if t in (torch.Tensor, torch.nn.Parameter):
        return True, True
    if value is None or t in (bool, int, float, str):
        return True, False
    if t in (list, tuple):
        items: Any = value
    elif t in (dict, collections.OrderedDict):
        if not all(k is None or type(k) in (bool, int, float, str) for k in value):
            return False, False
        items = value.values()
    else:
        return False, False
    any_tensor = False
    for item in items:
        ok, has = _is_tensor_tree(item, torch, depth + 1)
        if not ok:
            return False, False
        any_tensor = any_tensor or has
    return True, any_tensor


def try_torch(value: Any, path: str) -> Written | None:
    """Write a module as TorchScript, or a tree of tensors with ``torch.save``."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if isinstance(value, torch.nn.Module):
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated upstream, but torch.export needs a sample input,
                # which a step output does not come with.
                warnings.simplefilter("ignore", DeprecationWarning)
                scripted = torch.jit.script(value)
                torch.jit.save(scripted, path)
        except Exception as exc:  # noqa: BLE001 - scripting fails in many ways
            raise Fallback(
                f"torch.jit.script failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from None
        return Written("torchscript", meta={"training": bool(value.training)})
    ok, has_tensor = _is_tensor_tree(value, torch)
    if not (ok and has_tensor):
        return None
    try:
        torch.save(value, path)
    except Exception as exc:  # noqa: BLE001
        raise Fallback(f"torch.save failed: {type(exc).__name__}: {exc}") from None
    return Written("torch")


def _map_location() -> Any:
    import torch

    return None if torch.cuda.is_available() else "cpu"


def read_torch(path: str) -> Any:
    """Read a file written by ``torch.save``, allowing only tensors and containers."""
    import torch

    return torch.load(path, weights_only=True, map_location=_map_location())


def read_torchscript(path: str) -> Any:
    """Read a TorchScript module."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(path, map_location=_map_location())
