"""The run of a plain notebook (or script): what ``log_*`` record onto outside a pipeline step.

The first ``log_*`` call in a kernel that is not running a step opens a run named after the
notebook, with one step run called ``notebook``; every later call writes to it at once. The run
ends with :func:`end_run` (or when the process exits): its status becomes ``succeeded`` and the
model versions it registered are validated, as at the end of a pipeline run. A kernel that dies
leaves a run the store marks ``interrupted`` (its process is gone), never one stuck ``running``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import RunVerdict

_lock = threading.Lock()
_current: NotebookRun | None = None
_atexit_registered = False
_crashed = False  # a script died of an uncaught exception: its run failed


def notebook_path() -> str:
    """The path of the notebook this kernel runs, when the front end says; else a stand-in."""
    # jupyter-server gives a kernel started for a notebook its path (relative to the root).
    session = os.environ.get("JPY_SESSION_NAME")
    if session:
        path = Path(session)
        return str(path if path.is_absolute() else (Path.cwd() / path.name).resolve())
    import __main__

    main_file = getattr(__main__, "__file__", None)
    if main_file:
        return str(Path(main_file).resolve())
    return str(Path.cwd() / "(interactive)")


def current_cell_id() -> str | None:
    """The id of the cell being executed, when a front end sent one (JupyterLab does)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        parent = shell.kernel.get_parent() if shell is not None and hasattr(shell, "kernel") else {}
        return (parent.get("metadata") or {}).get("cellId")
    except Exception:  # noqa: BLE001 - no kernel, or an old one: no cell id
        return None


class NotebookRun:
    """One open run of a plain notebook, writing straight to the store."""

    def __init__(self, name: str | None = None) -> None:
        from ..config import MLPlat
        from ..store import open_artifacts, open_store

        self.config = MLPlat()
        self.store = open_store(self.config)
        self.artifacts = open_artifacts(self.config.artifacts_url)
        self.path = notebook_path()
        self.name = name or Path(self.path).stem or "notebook"
        pipeline_id = self.store.pipeline_id(self.name, self.path)
        self.run_id = self.store.create_run(
            pipeline_id=pipeline_id, pipeline_version="interactive", notebook_path=self.path,
            parameters={}, options={"interactive": True}, steps=["notebook"],
        )
        self.step_run_id = self.store.step_runs(self.run_id)[0].id
        from datetime import UTC, datetime

        self.store.update_step_run(self.step_run_id, status="running",
                                   started_at=datetime.now(UTC))
        self.ended = False
        # Other hosts judge liveness by heartbeat (a shared PostgreSQL store).
        self._stop = threading.Event()
        threading.Thread(target=self._beat, name="mlplat-notebook-run", daemon=True).start()

    def _beat(self) -> None:
        from ..store.sql import HEARTBEAT_EVERY

        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                self.store.heartbeat(self.run_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the run goes on
                pass

    def apply(self, *records: dict[str, Any]) -> list[Any]:
        from .records import Lineage, apply_records

        lineage = Lineage(notebook_path=self.path, step_name="notebook")
        return apply_records(self.store, self.artifacts, list(records), run_id=self.run_id,
                             step_run_id=self.step_run_id, lineage=lineage)

    def end(self, status: str = "succeeded") -> list[RunVerdict]:
        """Finish the run and validate the model versions it registered."""
        from datetime import UTC, datetime

        from .registry import ModelRegistry

        if self.ended:
            return []
        self.ended = True
        self._stop.set()
        verdicts = []
        try:
            if status == "succeeded":
                verdicts = ModelRegistry(self.store, self.artifacts).evaluate_run(self.run_id)
        finally:  # whatever happened while judging, the run does not stay "running"
            now = datetime.now(UTC)
            self.store.update_step_run(self.step_run_id, status=status, finished_at=now)
            self.store.finish_run(self.run_id, status)
            self.store.close()
        return verdicts


def current(create: bool = True) -> NotebookRun | None:
    """The open notebook run, opened on first use when ``create``."""
    global _current, _atexit_registered
    with _lock:
        if (_current is None or _current.ended) and create:
            _current = NotebookRun()
            if not _atexit_registered:
                atexit.register(_end_at_exit)
                _watch_uncaught()
                _atexit_registered = True
        return _current


def _watch_uncaught() -> None:
    """A script that dies of an exception ends its run ``failed`` (a notebook cell's error
    does not end the kernel, and so does not fail its run)."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: object) -> None:
        global _crashed
        _crashed = True
        previous(kind, value, tb)  # type: ignore[arg-type]

    sys.excepthook = hook


def end(status: str = "succeeded") -> list[RunVerdict]:
    """End the open notebook run (if any) and return its verdicts."""
    global _current
    with _lock:
        run, _current = _current, None
    return [] if run is None else run.end(status)


def _end_at_exit() -> None:
    try:
        verdicts = end("failed" if _crashed else "succeeded")
    except Exception:  # noqa: BLE001 - the interpreter is going away; the sweep will notice
        return
    for verdict in verdicts:  # the script's user sees what became of the models it logged
        print(f"mlplat: {verdict}", file=sys.stderr)
