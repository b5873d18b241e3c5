"""ipywidgets displays for notebooks: live run progress."""

from __future__ import annotations

import html
import time

from .pipeline.executor import RunOutcome, RunReporter, StepState
from .pipeline.spec import PipelineSpec

COLORS = {"pending": "#888", "running": "#b58900", "succeeded": "#2e7d32", "cached": "#00838f",
          "failed": "#c62828", "cancelled": "#8e24aa", "skipped": "#888",
          "upstream_failed": "#c62828", "interrupted": "#8e24aa"}


class RunProgress(RunReporter):
    """A live HTML table of steps (status, duration, cached) shown under the calling cell."""

    def __init__(self) -> None:
        import ipywidgets
        from IPython.display import display

        self.widget = ipywidgets.HTML()
        self.states: dict[str, StepState] = {}
        self.run_id = ""
        self.started = time.time()
        self.footer = ""
        display(self.widget)

    def _render(self) -> None:
        rows = []
        for st in self.states.values():
            duration = st.duration
            if st.status == "running" and st.started_at:
                duration = time.time() - st.started_at
            color = COLORS.get(st.status, "#000")
            rows.append(
                f"<tr><td>{html.escape(st.name)}</td>"
                f"<td style='color:{color};font-weight:600'>{st.status}</td>"
                f"<td>{'' if duration is None else f'{duration:.2f}s'}</td>"
                f"<td>{'yes' if st.cached else ''}</td>"
                f"<td>{html.escape((st.message or '')[:80])}</td></tr>"
            )
        self.widget.value = (
            f"<b>run {html.escape(self.run_id)}</b> {self.footer}"
            "<table><tr><th>step</th><th>status</th><th>duration</th><th>cached</th>"
            f"<th>note</th></tr>{''.join(rows)}</table>"
        )

    def on_run_start(self, run_id: str, spec: PipelineSpec, steps: dict[str, StepState]) -> None:
        self.run_id, self.states, self.started = run_id, steps, time.time()
        self._render()

    def on_step_update(self, state: StepState) -> None:
        self._render()

    def on_run_complete(self, outcome: RunOutcome) -> None:
        self.footer = f"{outcome.status} in {outcome.duration:.2f}s"
        self._render()


