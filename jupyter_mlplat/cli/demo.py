"""``jupyter mlplat demo``: the quickstart pipeline cold, cached, and after a one-step edit.

The first run registers the churn model and its validation verdict (blessed: it becomes
``production``); the edited run registers a second version, judged against the first.

Everything lives in the demo's work folder (notebook, SQLite store, artifacts, logs), so every
demo starts fresh and leaves the user's own store alone. The demo checks what it shows: it exits
non-zero when the second run is not fully cached or the edit re-runs the wrong steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import InvalidSpecError

MARKER = ".mlplat-demo"
EDITED_STEP = "featurize_numeric"
EDIT = "X_num = np.clip(X_num, -4, 4)  # added by the demo: clip outliers\n"


def template_path(name: str = "quickstart.ipynb") -> Path:
    """A starter notebook: packaged in wheels, from the repository in editable installs."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_templates" / name, here.parent / "templates" / name):
        if candidate.exists():
            return candidate
    raise InvalidSpecError(f"template {name} not found (looked in {here / '_templates'})")


def _fresh_workdir(path: Path) -> Path:
    path = path.expanduser().resolve()
    if path.exists():
        if not (path / MARKER).exists():
            raise InvalidSpecError(
                f"{path} exists and is not a demo folder; choose another --workdir (the demo "
                "empties its folder, so it only reuses folders it made)"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by `jupyter mlplat demo`; safe to delete\n")
    return path


def edit_step(notebook: Path, step: str, line: str) -> None:
    """Append ``line`` to the cell that starts ``step`` (what a user's edit would do)."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("mlplat", {}).get("step") == step:
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = src.rstrip("\n") + "\n" + line
            break
    else:
        raise InvalidSpecError(f"the demo notebook has no step {step!r}")
    tmp = notebook.with_suffix(".tmp")
    tmp.write_text(json.dumps(nb, indent=1))
    tmp.replace(notebook)


def run_demo(workdir: str, json_mode: bool = False, keep_serving: bool = False) -> int:
    from ..config import MLPlat
    from ..pipeline.executor import PipelineExecutor
    from ..pipeline.runs import RunService
    from . import display

    work = _fresh_workdir(Path(workdir))
    notebook = work / "quickstart.ipynb"
    shutil.copyfile(template_path(), notebook)
    config = MLPlat()
    config.store_url = f"sqlite:///{work / 'store.db'}"
    config.artifacts_url = str(work / "artifacts")
    config.logs_dir = str(work / "logs")
    console = display._console()

    def say(text: str) -> None:
        if not json_mode:
            console.print(text)

    say(f"[bold]jupyter-mlplat demo[/] in {work}\n  store: {config.store_url}\n"
        f"  artifacts: {config.artifacts_url}\n  cluster: a local Dask cluster\n")
    executor = PipelineExecutor(config, reporter=display.reporter(json_mode))
    service = RunService(config, store=executor.store)
    rounds: list[tuple[str, Any]] = []
    try:
        say("[bold]1. First run[/]: every step executes (featurize_numeric and "
            "featurize_categorical in parallel)")
        rounds.append(("cold", executor.run(notebook)))
        say("\n[bold]2. Run again, nothing changed[/]: every step comes from the cache")
        rounds.append(("unchanged", executor.run(notebook)))
        edit_step(notebook, EDITED_STEP, EDIT)
        say(f"\n[bold]3. Edit {EDITED_STEP}[/] (added `{EDIT.strip()}`): only it and the steps "
            "after it run again")
        rounds.append(("edited", executor.run(notebook)))
    finally:
        executor.close()
    described = [(label, service.describe(outcome.run_id)) for label, outcome in rounds]
    expected = {
        "cold": lambda r: all(s.status == "succeeded" for s in r.steps)
        and [m.verdict for m in r.models] == ["blessed"],
        "unchanged": lambda r: all(s.status == "cached" for s in r.steps),
        "edited": lambda r: sorted(s.name for s in r.steps if s.status == "succeeded")
        == sorted([EDITED_STEP, "train", "evaluate"]),
    }
    ok = all(expected[label](run) for label, run in described)
    serving: dict[str, Any] = {}
    if ok:
        from .demo_serving import serve_and_call

        say("\n[bold]4. Deploy churn@production[/] and serve it: `jupyter mlplat serve` on "
            "127.0.0.1, one prediction over HTTP")
        serving = serve_and_call(config, work)
        predictions = serving["answer"].get("predictions")
        ok = isinstance(predictions, list) and len(predictions) == 1
    try:
        return _report(json_mode, ok, work, config, described, serving, keep_serving, say,
                       console)
    finally:
        if serving:
            from .demo_serving import stop

            stop(serving["process"])


def _report(json_mode: bool, ok: bool, work: Path, config: Any, described: list[Any],
            serving: dict[str, Any], keep_serving: bool, say: Any, console: Any) -> int:
    from . import display

    public = {k: v for k, v in serving.items() if k != "process"}
    if json_mode:
        print(json.dumps({"ok": ok, "workdir": str(work), "serving": public, "runs": [
            {"label": label, **run.model_dump(mode="json")} for label, run in described]},
            indent=2, default=str))
        return 0 if ok else 1
    from rich.table import Table

    table = Table(title="\nSummary", title_justify="left")
    for col in ("run", "id", "status", "wall", "ran", "cached", "accuracy", "roc_auc"):
        table.add_column(col, no_wrap=True)
    for label, run in described:
        ran = [s.name for s in run.steps if s.status == "succeeded"]
        cached = [s.name for s in run.steps if s.status == "cached"]
        table.add_row(label, run.id, run.status, f"{run.duration or 0:.2f}s", str(len(ran)),
                      str(len(cached)), f"{run.metrics.get('accuracy', float('nan')):.3f}",
                      f"{run.metrics.get('roc_auc', float('nan')):.3f}")
    console.print(table)
    for label, run in described:
        ran = [s.name for s in run.steps if s.status == "succeeded"]
        console.print(f"  {label}: ran {', '.join(ran) if ran else 'nothing (all cached)'}")
    for label, run in described:
        for m in run.models:
            style = display.VERDICT_STYLE.get(m.verdict, "")
            console.print(f"  {label}: model [bold]{m.model}[/] v{m.version}: "
                          f"[{style}]{display._esc(m.summary or m.verdict)}[/]")
    say("\nModels: jupyter mlplat models; the verdict in full: jupyter mlplat model show "
        "churn@production")
    if serving:
        console.print(f"  served: {display._esc(json.dumps(serving['answer']))} from "
                      f"{serving['answered_by']} at {serving['url']}")
        console.print("  the same call with curl" + ("" if keep_serving else
                      " (the server stops with the demo: `jupyter mlplat demo --keep-serving` "
                      "keeps it up to try this)") + ":")
        print(f"    {serving['curl']}")
    last = described[-1][1]
    say(f"\nInspect: jupyter mlplat show {last.id}   (with MLPLAT_STORE_URL={config.store_url} "
        f"MLPLAT_ARTIFACTS_URL={config.artifacts_url})")
    say("[green]demo finished: cold run, full cache hit, only the edited step and its "
        "descendants re-ran, the blessed model answered over HTTP[/]" if ok
        else "[bold red]demo did not behave as expected[/]")
    if ok and serving and keep_serving:
        say(f"\nserving on {serving['url'].rsplit('/endpoints', 1)[0]} until Ctrl-C "
            f"(log: {serving['log']})")
        try:
            serving["process"].wait()
        except KeyboardInterrupt:
            say("stopping the serving process")
    return 0 if ok else 1
