"""Per-format writers and readers behind :mod:`jupyter_mlplat.pipeline.marshal`.

Each ``try_*`` writer returns a :class:`Written` when the value is its kind, ``None`` when it is
not, and raises :class:`Fallback` when it is its kind but the format cannot hold it exactly.
Modules here import only the standard library at import time; numpy, pandas, pyarrow, torch,
skops and cloudpickle are imported inside the functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Written:
    """What a writer wrote: its format, whether only a trusted loader may read it, details."""

    format: str
    trusted_only: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class Fallback(Exception):
    """The value's own format cannot hold it exactly; carries the reason."""
