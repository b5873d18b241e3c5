"""Build small notebooks as nbformat 4 JSON dicts for tests, without nbformat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def code(
    src: str,
    tags: tuple[str, ...] | list[str] = (),
    mlplat: dict[str, Any] | None = None,
    id: str | None = None,  # noqa: A002 - the nbformat field is called id
) -> dict[str, Any]:
    """A code cell; ``tags`` go to ``metadata.tags``, ``mlplat`` to ``metadata.mlplat``."""
    metadata: dict[str, Any] = {}
    if tags:
        metadata["tags"] = list(tags)
    if mlplat is not None:
        metadata["mlplat"] = mlplat
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": metadata,
        "outputs": [],
        "source": src.splitlines(keepends=True),
    }
    if id is not None:
        cell["id"] = id
    return cell


def md(src: str) -> dict[str, Any]:
    """A markdown cell."""
    return {"cell_type": "markdown", "metadata": {}, "source": src}


def notebook(*cells: dict[str, Any], kernel: str = "python3") -> dict[str, Any]:
    """An nbformat 4.5 notebook holding ``cells``."""
    return {
        "cells": list(cells),
        "metadata": {
            "kernelspec": {"name": kernel, "display_name": kernel, "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write(tmp_path: Path, name: str, nb: dict[str, Any]) -> Path:
    """Write ``nb`` to ``tmp_path/name`` (``.ipynb`` added when missing); returns the path."""
    path = tmp_path / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path
