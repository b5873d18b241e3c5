"""Terminal output: the live step table, run summaries, lists. The only module that prints."""

from __future__ import annotations

import sys
import time
from typing import Any

from ..pipeline.executor import RunOutcome, RunReporter, StepState
from ..pipeline.spec import PipelineSpec
from ..schemas import DescribeRun

STYLE = {
    "pending": "dim", "running": "bold yellow", "succeeded": "green", "cached": "cyan",
    "failed": "bold red", "cancelled": "magenta", "skipped": "dim", "upstream_failed": "red",
    "interrupted": "magenta",
}


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and console.width < 120:
        console = Console(stderr=stderr, highlight=False, width=120)  # logs and pipes: no wrap
    return console


def _esc(text: str) -> str:
    """Text from users and errors, shown literally (``[/data]`` is not rich markup)."""
    from rich.markup import escape

    return escape(text)


def _fmt_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


class LiveTable(RunReporter):
    """A live table of steps (status, duration, cached or not) on a terminal; plain lines else."""

    def __init__(self) -> None:
        self.console = _console(stderr=True)
        self.live: Any = None
        self.states: dict[str, StepState] = {}
        self.run_id = ""
        self.started = time.time()

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"run {self.run_id}", title_justify="left", expand=False)
        for col in ("step", "status", "duration", "cached", "note"):
            table.add_column(col)
        now = time.time()
        for st in self.states.values():
            duration = st.duration
            if st.status == "running" and st.started_at:
                duration = now - st.started_at
            table.add_row(
                _esc(st.name), f"[{STYLE.get(st.status, '')}]{st.status}[/]",
                _fmt_seconds(duration), "yes" if st.cached else "", _esc((st.message or "")[:70]),
            )
        table.caption = f"{now - self.started:.1f}s"
        return table

    def on_run_start(self, run_id: str, spec: PipelineSpec, steps: dict[str, StepState]) -> None:
        self.run_id, self.states, self.started = run_id, steps, time.time()
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(get_renderable=self._table, console=self.console,
                             refresh_per_second=8, transient=False)
            self.live.start()
        else:
            self.console.print(_esc(f"run {run_id}: {len(steps)} step(s) of {spec.name}"))

    def on_step_update(self, state: StepState) -> None:
        if self.live is None:
            extra = f" ({state.message})" if state.message and state.status != "running" else ""
            took = f" {state.duration:.2f}s" if state.duration else ""
            self.console.print(_esc(f"  {state.name:<24} {state.status}{took}{extra}"))

    def on_run_complete(self, outcome: RunOutcome) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def reporter(json_mode: bool) -> RunReporter:
    return RunReporter() if json_mode else LiveTable()


def print_run_summary(run: DescribeRun) -> None:
    console = _console()
    style = STYLE.get(run.status, "")
    ran = sum(1 for s in run.steps if s.status in ("succeeded", "failed"))
    cached = sum(1 for s in run.steps if s.cached)
    console.print(f"run [bold]{run.id}[/] [{style}]{run.status}[/] in "
                  f"{_fmt_seconds(run.duration)}: {ran} step(s) ran, {cached} cached")
    for step in run.steps:
        if step.status == "failed":
            cell = f" (notebook cell {step.source_cell_index})" if step.source_cell_index is not None else ""
            console.print(f"  [bold red]{_esc(step.name)} failed{cell}[/]: "
                          f"{_esc(f'{step.ename}: {step.evalue}')}")
            if step.executed_notebook:
                console.print(f"    executed notebook: {_esc(step.executed_notebook)}")
        elif step.status == "upstream_failed":
            console.print(_esc(f"  {step.name}: not started ({step.message})"))
    if run.metrics:
        console.print(_esc("  metrics: " + ", ".join(f"{k}={v:.4g}"
                                                     for k, v in run.metrics.items())))
    print_verdicts(run, console)
    if run.status != "succeeded":
        console.print(f"  details: jupyter mlplat show {run.id}; "
                      f"resume: jupyter mlplat resume {run.id}")


VERDICT_STYLE = {"blessed": "bold green", "rejected": "bold red", "unvalidated": "yellow"}


def print_verdicts(run: DescribeRun, console: Any) -> None:
    """One line per model version the run registered: its verdict and why."""
    for m in run.models:
        style = VERDICT_STYLE.get(m.verdict, "")
        console.print(f"  model [bold]{_esc(m.model)}[/] v{m.version} ({m.flavor}): "
                      f"[{style}]{_esc(m.summary or m.verdict)}[/]")
        if m.verdict == "rejected":
            console.print(f"    why: jupyter mlplat model show {m.model}@{m.version}")


def steps_document(spec: PipelineSpec) -> dict[str, Any]:
    return {
        "pipeline": spec.name,
        "path": spec.path,
        "parameters": [{"name": p.name, "default": p.source} for p in spec.parameters],
        "steps": [
            {
                "name": s.name, "after": list(s.after), "upstream": list(s.upstream),
                "inputs": s.inputs, "outputs": list(s.outputs), "params": list(s.params),
                "metrics": list(s.metrics), "cells": [c.index for c in s.cells],
                "gpu": s.gpu, "cache": s.cache, "retries": s.retries, "timeout": s.timeout,
                "kernel": s.kernel, "threads": s.threads,
            }
            for s in spec.steps
        ],
        "edges": [
            {"from": producer, "to": s.name,
             "data": sorted(v for v, p in s.inputs.items() if p == producer)}
            for s in spec.steps for producer in s.upstream
        ],
    }


def print_steps(spec: PipelineSpec) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"{spec.name}: {len(spec.steps)} step(s)", title_justify="left")
    for col in ("step", "after", "reads", "writes", "params", "cells", "options"):
        table.add_column(col)
    for s in spec.steps:
        reads = ", ".join(f"{v}<-{p}" for v, p in s.inputs.items())
        options = []
        if s.gpu:
            options.append(f"gpu={s.gpu}")
        if not s.cache:
            options.append("cache off")
        if s.retries:
            options.append(f"retries={s.retries}")
        if s.timeout:
            options.append(f"timeout={s.timeout:g}s")
        table.add_row(*(_esc(x) for x in (
            s.name, ", ".join(s.upstream), reads, ", ".join(s.outputs), ", ".join(s.params),
            ", ".join(str(c.index) for c in s.cells), " ".join(options))))
    console.print(table)
    if spec.parameters:
        console.print(_esc("parameters: " + ", ".join(f"{p.name}={p.source}"
                                                      for p in spec.parameters)))


def print_runs(runs: list[DescribeRun]) -> None:
    from rich.table import Table

    console = _console()
    if not runs:
        console.print("no runs yet: `jupyter mlplat run NOTEBOOK` starts one")
        return
    table = Table(title_justify="left")
    for col in ("run", "pipeline", "status", "started", "duration", "steps", "metrics"):
        table.add_column(col)
    for run in runs:
        done = sum(1 for s in run.steps if s.status in ("succeeded", "cached"))
        cached = sum(1 for s in run.steps if s.cached)
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in list(run.metrics.items())[:3])
        table.add_row(run.id, _esc(run.pipeline), f"[{STYLE.get(run.status, '')}]{run.status}[/]",
                      run.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                      _fmt_seconds(run.duration), f"{done}/{len(run.steps)} ({cached} cached)",
                      _esc(metrics))
    console.print(table)


def print_run(run: DescribeRun) -> None:
    from rich.table import Table

    console = _console()
    console.print(f"[bold]run {run.id}[/] of {_esc(run.pipeline)} ({_esc(run.notebook)})")
    console.print(f"  status: [{STYLE.get(run.status, '')}]{run.status}[/]   started: "
                  f"{run.created_at.astimezone():%Y-%m-%d %H:%M:%S}   duration: "
                  f"{_fmt_seconds(run.duration)}   host: {run.host} pid {run.pid}")
    if run.error:
        console.print(_esc(f"  error: {run.error}"))
    if run.parameters:
        console.print(_esc("  parameters: " + ", ".join(f"{k}={v!r}"
                                                       for k, v in run.parameters.items())))
    if run.params:
        console.print(_esc("  logged params: " + ", ".join(f"{k}={v!r}"
                                                          for k, v in run.params.items())))
    if run.metrics:
        console.print(_esc("  metrics: " + ", ".join(f"{k}={v:.6g}"
                                                    for k, v in run.metrics.items())))
    table = Table(title_justify="left")
    for col in ("step", "status", "attempt", "duration", "cached", "version", "outputs",
                "metrics"):
        table.add_column(col)
    for s in run.steps:
        cached = f"from {s.cached_from_run}" if s.cached else ""
        table.add_row(_esc(s.name), f"[{STYLE.get(s.status, '')}]{s.status}[/]", str(s.attempt),
                      _fmt_seconds(s.duration), cached, (s.version or "")[:12],
                      _esc(", ".join(o.name for o in s.outputs)),
                      _esc(", ".join(f"{k}={v:.4g}" for k, v in s.metrics.items())))
    console.print(table)
    if run.slices:
        slices = Table(title="slice metrics", title_justify="left")
        for col in ("step", "metric", "by", "slice", "value", "rows"):
            slices.add_column(col)
        for r in run.slices:
            slices.add_row(_esc(r.step or ""), _esc(r.metric), _esc(r.by or ""), _esc(r.slice),
                           "undefined" if r.value is None else f"{r.value:.4g}", str(r.count))
        console.print(slices)
    print_verdicts(run, console)
    for s in run.steps:
        if s.executed_notebook:
            console.print(_esc(f"  {s.name}: executed notebook {s.executed_notebook}"))
    for s in run.steps:
        if s.status in ("failed", "cancelled", "interrupted") and (s.ename or s.message):
            cell = (f" at notebook cell {s.source_cell_index}" if s.source_cell_index is not None
                    else "")
            where = (f" (step notebook cell {s.error_cell_index})"
                     if s.error_cell_index is not None else "")
            console.print(f"  [bold red]{_esc(s.name)}[/]{cell}{where}: "
                          f"{_esc(f'{s.ename or str()}: {s.evalue or s.message or str()}')}")


def err(message: str) -> None:
    print(message, file=sys.stderr)
