"""``jupyter mlplat models | model show | compare | lineage | alias``: the registry from a shell."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import InvalidSpecError
from ..schemas import CompareRuns, DescribeLineage, DescribeModel, DescribeModelVersion

EXIT_OK = 0


def add_parsers(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the registry commands on the main parser (``cmd`` adds one sub-command)."""
    cmd("models", "list registered models: versions, newest verdict, aliases")

    p = cmd("model", "show a model (all versions) or one version: verdict, metrics, slices, "
                     "signature, lineage")
    p.add_argument("action", choices=["show"])
    p.add_argument("ref", help="NAME (the model), NAME@VERSION or NAME@ALIAS (one version)")

    p = cmd("compare", "params and metrics of two or more runs side by side")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or unique prefixes)")

    p = cmd("lineage", "where a model version came from: cells -> step -> inputs -> run")
    p.add_argument("ref", help="NAME@VERSION, NAME@ALIAS or NAME (the newest)")

    p = cmd("alias", "point an alias (e.g. production) at a model version, or remove it")
    p.add_argument("action", choices=["set", "rm"])
    p.add_argument("model")
    p.add_argument("alias")
    p.add_argument("version", nargs="?", help="version number (for set)")
    p.add_argument("--reason", help="why (kept in the alias history)")


def _service(args: argparse.Namespace) -> Any:
    from ..tracking.service import ModelService
    from .main import _config

    return ModelService(_config(args))


def cmd_models(args: argparse.Namespace) -> int:
    from .main import _emit_json

    listing = _service(args).list()
    if args.json:
        _emit_json(listing)
        return EXIT_OK
    from rich.table import Table

    from .display import VERDICT_STYLE, _console, _esc

    console = _console()
    if not listing.models:
        console.print("no models yet: mlp.log_model(model, \"name\", sample_input=X[:5]) in a "
                      "notebook registers one")
        return EXIT_OK
    table = Table(title_justify="left")
    for col in ("model", "versions", "latest", "verdict", "aliases"):
        table.add_column(col)
    for m in listing.models:
        style = VERDICT_STYLE.get(m.latest_verdict, "")
        table.add_row(_esc(m.name), str(m.versions), f"v{m.latest}" if m.latest else "",
                      f"[{style}]{m.latest_verdict}[/]",
                      _esc(", ".join(f"{a}=v{v}" for a, v in m.aliases.items())))
    console.print(table)
    return EXIT_OK


def cmd_model(args: argparse.Namespace) -> int:
    from .main import _emit_json

    service = _service(args)
    if "@" in args.ref:
        version = service.describe_version(args.ref)
        if args.json:
            _emit_json(version)
        else:
            print_version(version)
        return EXIT_OK
    model = service.describe(args.ref)
    if args.json:
        _emit_json(model)
    else:
        print_model(model)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from ..pipeline.runs import RunService
    from .main import _config, _emit_json

    result = RunService(_config(args)).compare(args.runs)
    if args.json:
        _emit_json(result)
    else:
        print_compare(result)
    return EXIT_OK


def cmd_lineage(args: argparse.Namespace) -> int:
    from .main import _emit_json

    result = _service(args).lineage(args.ref)
    if args.json:
        _emit_json(result)
    else:
        print_lineage(result)
    return EXIT_OK


def cmd_alias(args: argparse.Namespace) -> int:
    from .main import _emit_json

    version: int | None = None
    if args.action == "set":
        if args.version is None or not (str(args.version).isascii() and str(args.version).isdigit()) or int(args.version) < 1:
            raise InvalidSpecError(f"alias set needs a version number (a positive integer); "
                                   f"got {args.version!r}: jupyter mlplat alias set "
                                   f"{args.model} {args.alias} 3")
        version = int(args.version)
    elif args.version is not None:
        raise InvalidSpecError("alias rm takes no version")
    model = _service(args).set_alias(args.model, args.alias, version, reason=args.reason)
    if args.json:
        _emit_json(model)
    elif version is None:
        print(f"{model.name}: alias {args.alias} removed")
    else:
        print(f"{model.name}@{args.alias} -> v{version}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "models": cmd_models,
    "model": cmd_model,
    "compare": cmd_compare,
    "lineage": cmd_lineage,
    "alias": cmd_alias,
}


# -- printing --------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_model(model: DescribeModel) -> None:
    from rich.table import Table

    from .display import VERDICT_STYLE, _console, _esc

    console = _console()
    console.print(f"[bold]model {_esc(model.name)}[/]: {len(model.versions)} version(s)")
    if model.aliases:
        console.print(_esc("  aliases: " + ", ".join(f"{a} -> v{v}"
                                                     for a, v in model.aliases.items())))
    if model.policy:
        fields = ", ".join(f"{k}={v}" for k, v in model.policy.items() if v is not None)
        console.print(_esc(f"  policy: {fields}"))
    table = Table(title_justify="left")
    for col in ("version", "flavor", "created", "run", "step", "verdict", "aliases", "summary"):
        table.add_column(col)
    for v in model.versions:
        style = VERDICT_STYLE.get(v.verdict_status, "")
        table.add_row(f"v{v.version}", v.flavor, f"{v.created_at.astimezone():%Y-%m-%d %H:%M}",
                      (v.run_id or "")[:12], _esc(v.step or ""),
                      f"[{style}]{v.verdict_status}[/]", _esc(", ".join(v.aliases)),
                      _esc(v.verdict.summary if v.verdict else ""))
    console.print(table)
    if model.alias_history:
        console.print("  alias history:")
        for e in model.alias_history:
            target = f"v{e.version}" if e.version is not None else "(removed)"
            was = f" (was v{e.previous})" if e.previous is not None else ""
            why = f": {e.reason}" if e.reason else ""
            console.print(_esc(f"    {e.at.astimezone():%Y-%m-%d %H:%M:%S} {e.alias} -> "
                               f"{target}{was} by {e.actor}{why}"))
    if model.versions:
        console.print(f"  newest in detail: jupyter mlplat model show "
                      f"{model.name}@{model.versions[-1].version}")


def print_version(v: DescribeModelVersion) -> None:
    from rich.table import Table

    from .display import VERDICT_STYLE, _console, _esc

    console = _console()
    aliases = f" ({', '.join(v.aliases)})" if v.aliases else ""
    console.print(f"[bold]{_esc(v.model)} v{v.version}[/]{_esc(aliases)}: {v.flavor}, "
                  f"created {v.created_at.astimezone():%Y-%m-%d %H:%M:%S} by {_esc(v.created_by)}")
    trust = " (trusted-only: loads for its owner only)" if v.trusted_only else ""
    console.print(_esc(f"  artifact: {v.artifact.format} sha256 {v.artifact.sha256[:16]}, "
                       f"{v.artifact.size} bytes{trust}"))
    if v.signature_text:
        console.print(_esc(f"  signature: {v.signature_text}"))
    console.print(_esc(f"  lineage: run {v.run_id or '-'}, step {v.step or '-'} "
                       f"(version {(v.step_version or '-')[:12]}), notebook {v.notebook or '-'}"))
    if v.metrics:
        console.print(_esc("  run metrics: " + ", ".join(f"{k}={_fmt(x)}"
                                                        for k, x in v.metrics.items())))
    style = VERDICT_STYLE.get(v.verdict_status, "")
    if v.verdict is not None:
        console.print(f"  verdict: [{style}]{_esc(v.verdict.summary)}[/]")
    else:
        why = v.verdict_reason or "no policy, or its run has not finished"
        console.print(f"  verdict: [{style}]{v.verdict_status}[/] ({_esc(why)})")
    if v.verdict is not None:
        if v.verdict.note:
            console.print(_esc(f"  note: {v.verdict.note}"))
        checks = Table(title="checks", title_justify="left")
        for col in ("check", "status", "candidate", "production", "threshold", "reason"):
            checks.add_column(col)
        check_style = {"passed": "green", "failed": "bold red", "ignored": "dim"}
        for c in v.verdict.checks:
            checks.add_row(_esc(c.name), f"[{check_style.get(c.status, '')}]{c.status}[/]",
                           _fmt(c.candidate), _fmt(c.baseline), _fmt(c.threshold), _esc(c.reason))
        console.print(checks)
    if v.slices:
        slices = Table(title="slice metrics (logged)", title_justify="left")
        for col in ("metric", "by", "slice", "value", "rows"):
            slices.add_column(col)
        for r in v.slices:
            slices.add_row(_esc(r.metric), _esc(r.by or ""), _esc(r.slice), _fmt(r.value),
                           str(r.count))
        console.print(slices)
    for o in v.overrides:
        console.print(_esc(f"  forced deploy by {o.actor} at {o.at.astimezone():%Y-%m-%d %H:%M}: "
                           f"{o.reason}"))


def print_compare(result: CompareRuns) -> None:
    from rich.table import Table

    from .display import _console, _esc

    console = _console()
    table = Table(title_justify="left")
    table.add_column("")
    for run_id in result.runs:
        table.add_column(f"{run_id} ({result.pipelines.get(run_id, '?')})")
    for kind, rows in (("param", result.params), ("metric", result.metrics)):
        for name, values in rows.items():
            key = f"{kind}.{name}"
            mark = "[bold yellow]" if key in result.differs else ""
            end = "[/]" if mark else ""
            table.add_row(_esc(key), *(f"{mark}{_esc(_fmt(values.get(r)))}{end}"
                                       for r in result.runs))
    console.print(table)
    if result.differs:
        console.print(_esc(f"differ: {', '.join(result.differs)}"))
    else:
        console.print("no differences in params or metrics")


def print_lineage(lin: DescribeLineage) -> None:
    from .display import _console, _esc

    console = _console()
    console.print(f"[bold]{_esc(lin.model)} v{lin.version}[/] ({lin.flavor}, sha256 "
                  f"{lin.artifact.get('sha256', '')[:16]})")
    console.print(_esc(f"  notebook: {lin.notebook or '-'}"))
    console.print(_esc(f"  cells: {', '.join(lin.cells) or '-'}"))
    console.print(_esc(f"  -> step {lin.step or '-'} version {(lin.step_version or '-')[:16]}"))
    for name, sha in lin.inputs.items():
        console.print(_esc(f"     input {name}: sha256 {sha[:16]}"))
    if lin.run:
        params = ", ".join(f"{k}={v!r}" for k, v in (lin.run.get("parameters") or {}).items())
        console.print(_esc(f"  -> run {lin.run['id']} ({lin.run['status']})"
                           + (f" with {params}" if params else "")))
    aliases = f" [{', '.join(lin.aliases)}]" if lin.aliases else ""
    console.print(_esc(f"  -> model {lin.model} v{lin.version}{aliases}, by {lin.created_by} "
                       f"at {lin.created_at}"))
    for e in lin.endpoints:
        share = "shadow" if e["shadow"] and not e["weight"] else f"{e['weight']}%"
        console.print(_esc(f"  -> endpoint {e['endpoint']} revision {e['revision']} "
                           f"({e['action']}, {share}) by {e['actor']} at {e['at']}"))
