"""BackgroundRuns against shutdown: a run racing ``close`` is refused or cancelled, and no
cluster is left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jupyter_mlplat.config import MLPlat
from jupyter_mlplat.errors import ConflictError
from jupyter_mlplat.pipeline.background import BackgroundRuns, _SharedCluster
from jupyter_mlplat.pipeline.dask import DaskCluster
from jupyter_mlplat.schemas import CreateRun
from jupyter_mlplat.store import open_artifacts, open_store
from tests.pipeline.nbbuild import notebook, write

from .conftest import step

pytestmark = pytest.mark.timeout(180)


def test_a_closed_shared_cluster_never_starts_again():
    cluster = DaskCluster("", 1, False, False, False)
    shared = _SharedCluster(cluster)
    shared.close()

    with pytest.raises(ConflictError, match="shutting down"):
        shared.start()
    with pytest.raises(ConflictError, match="shutting down"):
        shared.submit  # noqa: B018 - any use of the closed cluster is refused
    assert cluster.cluster is None and cluster.client is None


def test_close_racing_a_new_run_cancels_it_and_leaves_no_cluster(tmp_path: Path):
    """close() called while a run is being launched: the run is refused, or registered before
    close() looks and then cancelled; either way nothing runs and no cluster is left."""
    config = MLPlat()
    store = open_store(config)
    nb = write(tmp_path, "slow", notebook(step("wait", "import time\ntime.sleep(60)")))
    closers: list[threading.Thread] = []
    clusters: list[_SharedCluster] = []

    class Racing(BackgroundRuns):
        def _shared_cluster(self) -> _SharedCluster:
            if not closers:  # the server stops right now, from another thread
                closer = threading.Thread(target=self.close)
                closers.append(closer)
                closer.start()
                closer.join(1.0)
            cluster = super()._shared_cluster()
            clusters.append(cluster)
            return cluster

    background = Racing(config, store=store, artifacts=open_artifacts(config.artifacts_url))
    try:
        try:
            run = background.start(CreateRun(notebook=str(nb)), str(nb))
        except ConflictError:
            run = None
        closers[0].join(120)

        assert not closers[0].is_alive()
        assert background.active == 0
        if run is not None:
            assert store.run_row(run.id).status in ("cancelled", "failed")
        assert all(c.closed for c in clusters), "a cluster nobody will close"
    finally:
        background.close()
        store.close()
