"""ipywidgets displays for notebooks: live run progress, a runs browser and a deploy form."""

from __future__ import annotations

import html
import time
from typing import Any

from .errors import InvalidSpecError, NotFoundError
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




# -- mlp.widgets.runs() / mlp.widgets.deploy(): the sidebar's essentials without JupyterLab ----


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are escaped here (callers pass plain text)."""
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>"
                   for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{cell}</td>" for cell in row) + "</tr>"
        for row in rows)
    return f"<table class='mlplat-table'><tr>{head}</tr>{body}</table>"


def _status(status: str) -> str:
    color = COLORS.get(status, "#000")
    return f"<span style='color:{color};font-weight:600'>{html.escape(status)}</span>"


def _error(exc: BaseException) -> str:
    return f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"


class RunsBrowser:
    """Runs of the owner as a table, with a run's steps, metrics and models on selection.

    ``widget`` is the ipywidgets box to display; :meth:`refresh` re-reads the store (the
    Refresh button calls it). Works in any front end that renders ipywidgets (classic
    Notebook, VS Code, JupyterLab).
    """

    def __init__(self, pipeline: str | None = None, limit: int = 20, *,
                 config: Any = None) -> None:
        import ipywidgets as w

        from .pipeline.runs import RunService

        if not 1 <= int(limit) <= 10_000:
            raise InvalidSpecError(f"limit must be between 1 and 10000, not {limit!r}")
        self.pipeline, self.limit = pipeline, int(limit)
        self.service = RunService(config)
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.picker = w.Dropdown(description="Run", options=[], layout=w.Layout(width="28em"))
        self.table = w.HTML()
        self.detail = w.HTML()
        self.refresh_button.on_click(lambda _: self.refresh())
        self.picker.observe(lambda _: self.show(self.picker.value), names="value")
        self.widget = w.VBox([w.HBox([self.refresh_button, self.picker]), self.table,
                              self.detail])
        self.refresh()

    def refresh(self) -> None:
        """Re-read the runs; keeps the selected run when it is still listed."""
        try:
            runs = self.service.list(limit=self.limit, pipeline=self.pipeline)
        except Exception as exc:  # noqa: BLE001 - shown in the widget, not raised into a callback
            self.table.value = _error(exc)
            return
        rows = []
        for r in runs:
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())[:4])
            rows.append([html.escape(r.id[:8]), html.escape(r.pipeline), _status(r.status),
                         html.escape(f"{r.created_at:%Y-%m-%d %H:%M:%S}"),
                         "" if r.duration is None else f"{r.duration:.1f}s",
                         html.escape(metrics)])
        self.table.value = (_table(["run", "pipeline", "status", "created", "duration",
                                    "metrics"], rows) if rows else "<i>no runs yet</i>")
        selected = self.picker.value
        self.picker.options = [(f"{r.id[:8]}  {r.pipeline}  {r.status}", r.id) for r in runs]
        if selected in {r.id for r in runs}:
            self.picker.value = selected
            self.show(selected)

    def show(self, run_id: str | None) -> None:
        """Show one run: its steps, parameters, metrics and the models it registered."""
        if not run_id:
            self.detail.value = ""
            return
        try:
            run = self.service.describe(run_id)
        except Exception as exc:  # noqa: BLE001
            self.detail.value = _error(exc)
            return
        steps = [[html.escape(s.name), _status(s.status),
                  "" if s.duration is None else f"{s.duration:.2f}s",
                  "yes" if s.cached else "",
                  html.escape(s.executed_notebook or ""),
                  html.escape((s.evalue or s.message or "")[:120])] for s in run.steps]
        parts = [f"<b>run {html.escape(run.id)}</b> {_status(run.status)}",
                 _table(["step", "status", "duration", "cached", "executed notebook", "note"],
                        steps)]
        if run.parameters:
            parts.append(_table(["parameter", "value"],
                                [[html.escape(k), html.escape(repr(v))]
                                 for k, v in sorted(run.parameters.items())]))
        if run.metrics:
            parts.append(_table(["metric", "value"],
                                [[html.escape(k), f"{v:.6g}"]
                                 for k, v in sorted(run.metrics.items())]))
        if run.models:
            parts.append(_table(["model", "version", "verdict", "why"],
                                [[html.escape(m.model), str(m.version), _status(m.verdict),
                                  html.escape(m.summary or "")] for m in run.models]))
        self.detail.value = "".join(parts)


class DeployForm:
    """Deploy a registered model from a notebook: model, version (blessed first, verdict
    shown), endpoint, canary %, shadow, and a forced release with its reason.

    ``widget`` is the form; pressing Deploy calls :meth:`deploy`, which shows the endpoint's
    URL, its token (once, when created) and a curl command, or the refusal's reasons.
    """

    def __init__(self, model: str | None = None, endpoint: str | None = None, *,
                 config: Any = None) -> None:
        import ipywidgets as w

        from .serving.deploy import DeployService
        from .tracking.service import ModelService

        self.config = config
        self.models = ModelService(config)
        self.deployer = DeployService(config)
        names = [m.name for m in self.models.list().models]
        if model is not None and model not in names:
            raise NotFoundError(f"no registered model named {model!r}; "
                             f"registered: {', '.join(names) or 'none yet'}")
        self.model = w.Dropdown(description="Model", options=names,
                                value=model or (names[0] if names else None))
        self.version = w.Dropdown(description="Version", options=[],
                                  layout=w.Layout(width="36em"))
        self.endpoint = w.Text(description="Endpoint", value=endpoint or (self.model.value or ""))
        self.canary = w.BoundedIntText(description="Canary %", value=0, min=0, max=99,
                                       tooltip="0: all traffic to this version")
        self.shadow = w.Dropdown(description="Shadow", options=[("none", None)])
        self.force = w.Checkbox(description="Deploy even if not blessed", value=False)
        self.reason = w.Text(description="Reason", placeholder="required when forced")
        self.button = w.Button(description="Deploy model", button_style="primary",
                               icon="rocket")
        self.result = w.HTML()
        self.model.observe(lambda _: self._versions(), names="value")
        self.button.on_click(lambda _: self.deploy())
        self.widget = w.VBox([self.model, self.version, self.endpoint, self.canary, self.shadow,
                              w.HBox([self.force, self.reason]), self.button, self.result])
        self._versions()

    def _versions(self) -> None:
        name = self.model.value
        if not name:
            self.version.options, self.shadow.options = [], [("none", None)]
            self.result.value = "<i>no registered models yet: log one with mlp.log_model</i>"
            return
        described = self.models.describe(name)
        order = {"blessed": 0, "unvalidated": 1, "rejected": 2}
        versions = sorted(described.versions,
                          key=lambda v: (order.get(v.verdict_status, 3), -v.version))
        options = []
        for v in versions:
            why = v.verdict.summary if v.verdict is not None else (v.verdict_reason or "")
            aliases = f" [{', '.join(v.aliases)}]" if v.aliases else ""
            options.append((f"v{v.version}{aliases}: {v.verdict_status} {why}"[:120], v.version))
        self.version.options = options
        self.version.value = options[0][1] if options else None
        self.shadow.options = [("none", None)] + [(f"{name}@{v.version}", f"{name}@{v.version}")
                                                  for v in versions]
        if not self.endpoint.value:
            self.endpoint.value = name

    def deploy(self) -> Any:
        """Deploy what the form says; returns the ``DeployResult`` (None when refused)."""
        try:
            result = self.deployer.deploy(
                self.model.value or "", self.version.value,
                endpoint=self.endpoint.value.strip() or None,
                traffic=self.canary.value or None, shadow=self.shadow.value,
                force=self.force.value, reason=self.reason.value.strip() or None)
        except Exception as exc:  # noqa: BLE001 - the refusal is the answer shown
            self.result.value = _error(exc)
            return None
        ep = result.endpoint
        lines = [f"<b>deployed</b> {html.escape(ep.name)} revision {ep.revision}: "
                 + ", ".join(f"{html.escape(r.model)}@{r.version} {r.weight}%"
                             for r in ep.routes)]
        if result.forced:
            lines.append("<span style='color:#b58900'>forced: the release is recorded with "
                         "its reason</span>")
        if ep.url:
            lines.append(f"URL: <code>{html.escape(ep.url)}</code>")
        else:
            lines.append("Serve it with <code>jupyter mlplat serve</code> (or set "
                         "MLPLAT_SERVING_URL to show the URL here).")
        if result.token:
            lines.append(f"Token (shown once): <code>{html.escape(result.token)}</code>")
        if ep.curl:
            lines.append(f"<pre>{html.escape(ep.curl)}</pre>")
        self.result.value = "<br>".join(lines)
        self._versions()
        return result


def runs(pipeline: str | None = None, limit: int = 20, *, config: Any = None) -> Any:
    """Display the owner's runs (a table with a Refresh button and a run's details).

    Returns the :class:`RunsBrowser` (``.widget`` is what was displayed).
    """
    from IPython.display import display

    browser = RunsBrowser(pipeline, limit, config=config)
    display(browser.widget)
    return browser


def deploy(model: str | None = None, endpoint: str | None = None, *,
           config: Any = None) -> Any:
    """Display a Deploy model form. Returns the :class:`DeployForm`."""
    from IPython.display import display

    form = DeployForm(model, endpoint, config=config)
    display(form.widget)
    return form
