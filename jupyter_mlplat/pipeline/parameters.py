"""Pipeline parameters: ``-p NAME VALUE`` text and Python values, checked against the defaults."""

from __future__ import annotations

import ast
from typing import Any

from ..errors import InvalidSpecError
from .spec import PipelineSpec


def parse_cli_value(name: str, raw: str, spec: PipelineSpec) -> Any:
    """Turn ``-p NAME VALUE`` text into the parameter's type (its default's type)."""
    param = spec.parameter(name)
    if param is None:
        known = ", ".join(p.name for p in spec.parameters) or "none (the notebook has no "
        known += "" if spec.parameters else "cell tagged 'parameters')"
        raise InvalidSpecError(f"unknown parameter {name!r}; the notebook's parameters: {known}")
    target = param.type_name if param.literal else "NoneType"
    try:
        if target == "bool":
            low = raw.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(raw)
        if target == "int":
            return int(raw)
        if target == "float":
            return float(raw)
        if target == "str":
            return raw
        if target in ("list", "dict", "tuple", "set"):
            value = ast.literal_eval(raw)
            if type(value).__name__ != target:
                raise ValueError(raw)
            return value
        # no typed default: papermill's rules (literal if it parses, else a string)
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    except (ValueError, SyntaxError):
        raise InvalidSpecError(
            f"parameter {name!r} expects {target} (its default is {param.source}); "
            f"got {raw!r}"
        ) from None


def resolve_parameters(spec: PipelineSpec, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``given``; unknown names and wrong types are clear errors."""
    resolved: dict[str, Any] = {}
    for param in spec.parameters:
        if param.literal:
            resolved[param.name] = param.default
    for name, value in given.items():
        param = spec.parameter(name)
        if param is None:
            known = ", ".join(p.name for p in spec.parameters) or "none"
            raise InvalidSpecError(f"unknown parameter {name!r}; the notebook's parameters: "
                                   f"{known}")
        if param.literal and param.default is not None:
            expected = type(param.default)
            ok = isinstance(value, expected) or (expected is float and isinstance(value, int)
                                                 and not isinstance(value, bool))
            if not ok or (expected is int and isinstance(value, bool)):
                raise InvalidSpecError(
                    f"parameter {name!r} expects {expected.__name__} (its default is "
                    f"{param.source}); got {type(value).__name__} {value!r}"
                )
        resolved[name] = value
    return resolved


def source_literal(value: Any) -> str:
    """Python source that evaluates to ``value`` in a step's parameters cell.

    ``repr`` is that for every literal but a non-finite float: ``repr(float("nan"))`` is
    ``nan``, a NameError in the kernel. Those become ``float('nan')`` (``-float('inf')``),
    inside lists, tuples, sets and dicts too.
    """
    import math

    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "float('nan')"
        return "float('inf')" if value > 0 else "-float('inf')"
    if type(value) is list:
        return "[" + ", ".join(source_literal(v) for v in value) + "]"
    if type(value) is tuple:
        inner = ", ".join(source_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if type(value) is dict:
        return "{" + ", ".join(f"{source_literal(k)}: {source_literal(v)}"
                               for k, v in value.items()) + "}"
    if type(value) is set and value:
        return "{" + ", ".join(source_literal(v) for v in value) + "}"
    return repr(value)
