"""``jupyter mlplat ...``: parse arguments, call the library, print (rich tables and progress).

Exit codes: 0 success, 1 a run failed or was cancelled, 2 bad input (the message says what was
expected), 130 interrupted. Every command that runs, lists or shows takes ``--json``: then stdout
carries one JSON document and nothing else.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidSpecError, MLPlatError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own errors: same shape, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jupyter mlplat",
                     description="Notebook cells as versioned pipeline steps, run on Dask.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def cmd(name: str, help: str, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON document")
        return p

    p = cmd("run", "run a notebook as a pipeline")
    p.add_argument("notebook", help="path to the .ipynb whose marked cells are the steps")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="set a notebook parameter (repeatable)")
    p.add_argument("--dask-address", default=None, help="scheduler of an existing Dask cluster")
    p.add_argument("--force", action="append", default=[], metavar="STEP",
                   help="run STEP even when a cached result exists (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--only", metavar="STEP", help="run only STEP")
    group.add_argument("--from", dest="from_step", metavar="STEP",
                       help="run STEP and every step after it")
    group.add_argument("--to", metavar="STEP", help="run STEP and every step before it")

    p = cmd("steps", "show a notebook's steps and data edges (runs nothing)")
    p.add_argument("notebook")

    p = cmd("runs", "list runs, newest first")
    p.add_argument("--pipeline", help="only runs of this pipeline (notebook name or path)")
    p.add_argument("--status", help="only runs in this status")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")

    p = cmd("show", "show one run: steps, timings, cache, params, metrics, errors")
    p.add_argument("run", help="run id (or a unique prefix)")

    p = cmd("resume", "re-run the steps of a failed or interrupted run that did not succeed")
    p.add_argument("run")

    p = cmd("cancel", "cancel a running run")
    p.add_argument("run")

    p = cmd("logs", "print a run's log (cell output of every step)", json_flag=False)
    p.add_argument("run")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")

    p = cmd("db", "database maintenance")
    p.add_argument("action", choices=["upgrade"], help="upgrade: apply Alembic migrations")

    from . import deploy, models, projects, schedule, serve, service

    models.add_parsers(cmd)
    deploy.add_parsers(cmd)
    serve.add_parsers(cmd)
    service.add_parsers(cmd)
    schedule.add_parsers(cmd)
    projects.add_parsers(cmd)

    p = cmd("demo", "run the quickstart pipeline three times (cold, cached, after an edit), "
                    "then deploy its blessed model and call it over HTTP")
    p.add_argument("--workdir", default="mlplat-demo",
                   help="folder for the demo's notebook, store and artifacts (made fresh)")
    p.add_argument("--keep-serving", action="store_true",
                   help="leave the demo's serving process running until Ctrl-C (try the curl)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jupyter-mlplat``."""
    args = build_parser().parse_args(argv)
    from . import deploy, models, projects, schedule, serve, service

    handler: Callable[[argparse.Namespace], int] = {
        **COMMANDS, **models.COMMANDS, **deploy.COMMANDS, **serve.COMMANDS,
        **service.COMMANDS, **schedule.COMMANDS, **projects.COMMANDS}[args.command]
    try:
        return handler(args)
    except MLPlatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _config(args: argparse.Namespace) -> Any:
    from ..config import MLPlat

    config = MLPlat()
    if getattr(args, "dask_address", None):
        config.dask_address = args.dask_address
    return config


def _emit_json(data: Any) -> None:
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if hasattr(d, "model_dump") else d for d in data]
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def cmd_run(args: argparse.Namespace) -> int:
    from ..pipeline.notebook import parse_path
    from ..pipeline.parameters import parse_cli_value

    config = _config(args)
    spec = parse_path(args.notebook)
    params: dict[str, Any] = {}
    for name, raw in args.parameter:
        params[name] = parse_cli_value(name, raw, spec)
    return _execute(args, config, lambda ex: ex.run(
        args.notebook, params, only=args.only, from_step=args.from_step, to=args.to,
        force=args.force, spec=spec))


def _execute(args: argparse.Namespace, config: Any, start: Callable[[Any], Any]) -> int:
    """Run or resume with a progress display; print the finished run; exit 1 unless it succeeded."""
    from ..pipeline.executor import PipelineExecutor
    from ..pipeline.runs import RunService
    from . import display

    executor = PipelineExecutor(config, reporter=display.reporter(json_mode=args.json))

    def on_sigint(signum: int, frame: Any) -> None:
        # The first Ctrl-C cancels cleanly at the next poll (kernels stopped, run recorded
        # as cancelled); a KeyboardInterrupt raised mid-transaction could leave the store locked.
        if executor.interrupted.is_set():
            raise KeyboardInterrupt
        executor.interrupted.set()
        print("cancelling the run (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        outcome = start(executor)
    finally:
        signal.signal(signal.SIGINT, previous)
        executor.close()
    described = RunService(config, store=executor.store).describe(outcome.run_id)
    if args.json:
        _emit_json(described)
    else:
        display.print_run_summary(described)
    if executor.interrupted.is_set():
        return EXIT_INTERRUPTED
    return EXIT_OK if outcome.status == "succeeded" else EXIT_FAILED


def cmd_steps(args: argparse.Namespace) -> int:
    from ..pipeline.notebook import parse_path
    from . import display

    spec = parse_path(args.notebook)
    if args.json:
        _emit_json(display.steps_document(spec))
    else:
        display.print_steps(spec)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from ..pipeline.runs import RunService
    from . import display

    if args.limit < 1:
        raise InvalidSpecError(f"--limit must be a positive integer; got {args.limit}")
    runs = RunService(_config(args)).list(limit=args.limit, pipeline=args.pipeline,
                                          status=args.status)
    if args.json:
        _emit_json({"runs": [r.model_dump(mode="json") for r in runs]})
    else:
        display.print_runs(runs)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from ..pipeline.runs import RunService
    from . import display

    run = RunService(_config(args)).describe(args.run)
    if args.json:
        _emit_json(run)
    else:
        display.print_run(run)
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    return _execute(args, _config(args), lambda ex: ex.resume(args.run))


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..pipeline.runs import RunService

    run = RunService(_config(args)).cancel(args.run)
    if args.json:
        _emit_json(run)
    else:
        print(f"run {run.id}: {run.status}")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from ..pipeline.runs import RunService

    service = RunService(_config(args))
    if args.follow:
        for chunk in service.follow(args.run):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    else:
        sys.stdout.write(service.logs(args.run))
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from ..store.sql import redact_url, upgrade

    config = _config(args)
    revision = upgrade(config.store_url)
    if args.json:
        _emit_json({"store_url": redact_url(config.store_url), "revision": revision})
    else:
        print(f"store {redact_url(config.store_url)} is at revision {revision}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.workdir, json_mode=args.json, keep_serving=args.keep_serving)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "steps": cmd_steps,
    "runs": cmd_runs,
    "show": cmd_show,
    "resume": cmd_resume,
    "cancel": cmd_cancel,
    "logs": cmd_logs,
    "db": cmd_db,
    "demo": cmd_demo,
}

if __name__ == "__main__":
    sys.exit(main())
