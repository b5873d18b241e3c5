"""Hostile files for the safe-loading tests: a module that leaves a marker when it is imported or
its class is built, and a real skops file edited to reach for that module and a dangerous
function."""

from __future__ import annotations

import io
import json
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
                ) -> Iterator[tuple[str, Path]]:
    """Yield (module name, marker path): importing the module, or building its ``Evil``
    class from a file, appends a line to the marker."""
    marker = tmp_path / "skops-pwned"
    name = f"{prefix}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        open({str(marker)!r}, "a").write("imported\\n")

        class Evil:
            def __setstate__(self, state):
                open({str(marker)!r}, "a").write("constructed\\n")
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def crafted_skops(module: str, func: tuple[str, str] = ("builtins", "eval")) -> bytes:
    """A real skops file of a FunctionTransformer, edited so that ``func`` is the function
    ``func`` (module, name) and ``kw_args`` an object of ``module``'s ``Evil`` class."""
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    def node(cls: str, mod: str, loader: str, ident: int, **extra: object) -> dict[str, object]:
        return {"__class__": cls, "__module__": mod, "__loader__": loader, "__id__": ident,
                **extra}

    src = zipfile.ZipFile(io.BytesIO(sio.dumps(FunctionTransformer(np.log1p))))
    schema = json.loads(src.read("schema.json"))
    params = schema["content"]["content"]
    params["func"] = node(func[1], func[0], "FunctionNode", 101)
    params["kw_args"] = node("Evil", module, "ObjectNode", 102, content=node(
        "dict", "builtins", "DictNode", 104, content={},
        key_types=node("list", "builtins", "ListNode", 103, content=[])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            dst.writestr(n, json.dumps(schema) if n == "schema.json" else src.read(n))
    return out.getvalue()
