"""Pipeline fixtures: one real LocalCluster for the session, an executor per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.pipeline.executor import PipelineExecutor

from .nbbuild import code, notebook, write


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes with warm kernel pools (as the default cluster)."""
    from jupyter_mlplat.pipeline.dask import DaskCluster

    c = DaskCluster("", n_workers=2)
    c.start()
    yield c
    c.close()


@pytest.fixture
def config(mlplat_isolated_env: Path) -> MLPlat:
    return MLPlat()


@pytest.fixture
def executor(config: MLPlat, cluster: Any) -> Iterator[PipelineExecutor]:
    ex = PipelineExecutor(config, cluster=cluster)
    yield ex
    ex.close()


def step(name: str, src: str, **options: Any) -> dict[str, Any]:
    """A code cell that starts step ``name`` (``metadata.mlplat``)."""
    return code(src, mlplat={"step": name, **options})


def imports(src: str) -> dict[str, Any]:
    return code(src, mlplat={"role": "imports"})


def params(src: str) -> dict[str, Any]:
    return code(src, tags=["parameters"])


@pytest.fixture
def make_nb(tmp_path: Path):
    """Write a notebook of the given cells into the test's folder; returns its path."""

    def make(*cells: dict[str, Any], name: str = "pipe") -> Path:
        return write(tmp_path, name, notebook(*cells))

    return make
