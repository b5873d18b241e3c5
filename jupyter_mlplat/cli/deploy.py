"""``jupyter mlplat deploy | undeploy | rollback | endpoints``: endpoints from a shell."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import InvalidSpecError
from ..schemas import DeployResult, DescribeEndpoint

EXIT_OK = 0


def add_parsers(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the endpoint commands on the main parser (``cmd`` adds one sub-command)."""
    p = cmd("deploy", "serve a model version on an endpoint (a new endpoint revision)")
    p.add_argument("model", help="NAME (the newest blessed version), NAME@VERSION or NAME@ALIAS")
    p.add_argument("--endpoint", help="endpoint name (default: the model's name)")
    p.add_argument("--canary", type=int, metavar="PERCENT",
                   help="send PERCENT (1-99) of the traffic to this version, the rest to what "
                        "the endpoint serves now")
    p.add_argument("--shadow", metavar="NAME@VERSION",
                   help="mirror traffic to this version; its answers are logged, not returned")
    p.add_argument("--shadow-share", type=float, default=1.0, metavar="FRACTION",
                   help="share of the traffic mirrored to the shadow (default 1.0)")
    p.add_argument("--sticky-header", metavar="HEADER",
                   help="a request header whose value pins a caller to one side of a split")
    p.add_argument("--public", action="store_true", help="callers need no token")
    p.add_argument("--force", action="store_true",
                   help="deploy a version its validation policy did not bless (needs --reason)")
    p.add_argument("--reason", help="why (recorded with your name)")

    p = cmd("batch-predict", "predict with a model over Parquet/CSV files on the Dask cluster")
    p.add_argument("model", help="NAME@VERSION, NAME@ALIAS or NAME (the newest)")
    p.add_argument("data", nargs="+", help="input files or globs (quote globs: 'data/*.parquet')")
    p.add_argument("-o", "--output", required=True, help="output folder (new or empty)")
    p.add_argument("--format", dest="output_format", choices=["parquet", "csv"],
                   help="output format (default: the inputs')")
    p.add_argument("--proba", action="store_true", help="add proba_<class> columns")
    p.add_argument("--no-columns", action="store_true",
                   help="write predictions only (rows stay aligned with the inputs)")
    p.add_argument("--columns", help="comma-separated input columns the model reads "
                   "(default: all, or the signature's)")
    p.add_argument("--dask-address", default=None, help="scheduler of an existing Dask cluster")

    p = cmd("undeploy", "stop serving an endpoint (its history stays)")
    p.add_argument("endpoint")

    p = cmd("rollback", "serve what an endpoint served before its newest revision")
    p.add_argument("endpoint")

    p = cmd("endpoints", "list endpoints; `endpoints show NAME`; `endpoints token NAME --rotate`")
    p.add_argument("action", nargs="?", choices=["list", "show", "token"], default="list")
    p.add_argument("endpoint", nargs="?")
    p.add_argument("--rotate", action="store_true", help="with `token`: make a new token")


def _service(args: argparse.Namespace) -> Any:
    from ..serving.deploy import DeployService
    from .main import _config

    return DeployService(_config(args))


def cmd_deploy(args: argparse.Namespace) -> int:
    from .main import _emit_json

    if args.force and not args.reason:
        raise InvalidSpecError("--force needs --reason \"...\" (recorded with your name)")
    result = _service(args).deploy(
        args.model, endpoint=args.endpoint, traffic=args.canary, shadow=args.shadow,
        shadow_share=args.shadow_share, force=args.force, reason=args.reason,
        public=True if args.public else None, sticky_header=args.sticky_header)
    if args.json:
        _emit_json(result)
    else:
        print_deploy(result)
    return EXIT_OK


def cmd_undeploy(args: argparse.Namespace) -> int:
    from .main import _emit_json

    endpoint = _service(args).undeploy(args.endpoint)
    if args.json:
        _emit_json(endpoint)
    else:
        print(f"endpoint {endpoint.name}: undeployed (revision {endpoint.revision})")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from .main import _emit_json

    endpoint = _service(args).rollback(args.endpoint)
    if args.json:
        _emit_json(endpoint)
    else:
        print_endpoint(endpoint)
    return EXIT_OK


def cmd_endpoints(args: argparse.Namespace) -> int:
    from .main import _emit_json

    service = _service(args)
    if args.action in ("show", "token") and not args.endpoint:
        raise InvalidSpecError(f"`endpoints {args.action}` needs an endpoint name")
    if args.action == "token":
        if not args.rotate:
            raise InvalidSpecError("tokens are shown once, when made; `endpoints token NAME "
                                   "--rotate` makes a new one (the old one stops working)")
        result = service.rotate_token(args.endpoint)
        if args.json:
            _emit_json(result)
        else:
            print(f"new token for endpoint {args.endpoint} (shown once; the old one no longer "
                  f"works):\n{result.token}")
        return EXIT_OK
    if args.action == "show":
        endpoint = service.describe(args.endpoint)
        if args.json:
            _emit_json(endpoint)
        else:
            print_endpoint(endpoint, history=True)
        return EXIT_OK
    listing = service.list()
    if args.json:
        _emit_json(listing)
        return EXIT_OK
    if not listing.endpoints:
        print("no endpoints yet: `jupyter mlplat deploy MODEL` makes one")
    for endpoint in listing.endpoints:
        print_endpoint(endpoint)
    return EXIT_OK


def _columns(args: argparse.Namespace) -> list[str] | None:
    if not args.columns:
        return None
    return [c.strip() for c in args.columns.split(",") if c.strip()]


def cmd_batch_predict(args: argparse.Namespace) -> int:
    from ..serving.batch import batch_predict
    from .display import _console
    from .main import _config, _emit_json

    config = _config(args)
    if args.json:
        result = batch_predict(args.model, args.data, args.output, config=config,
                               output_format=args.output_format,
                               keep_columns=not args.no_columns, proba=args.proba,
                               columns=_columns(args))
        _emit_json(vars(result))
        return EXIT_OK
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=_console(stderr=True),
                  transient=False) as progress:
        task = progress.add_task(f"predicting with {args.model}", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = batch_predict(args.model, args.data, args.output, config=config,
                               output_format=args.output_format,
                               keep_columns=not args.no_columns, proba=args.proba,
                               columns=_columns(args), on_progress=on_progress)
    print(f"{result.rows} rows from {len(result.inputs)} file(s) -> {len(result.files)} file(s) "
          f"in {result.output} ({result.model} v{result.version}, {result.seconds:.2f}s)")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "batch-predict": cmd_batch_predict,
    "deploy": cmd_deploy,
    "undeploy": cmd_undeploy,
    "rollback": cmd_rollback,
    "endpoints": cmd_endpoints,
}


def _routes_text(endpoint: DescribeEndpoint) -> str:
    if not endpoint.deployed:
        return "not deployed"
    text = ", ".join(f"{r.model}@{r.version} {r.weight}%" for r in endpoint.routes)
    if endpoint.shadow:
        text += (f"; shadow {endpoint.shadow.model}@{endpoint.shadow.version} "
                 f"{endpoint.shadow.share:.0%}")
    return text


def print_endpoint(endpoint: DescribeEndpoint, *, history: bool = False) -> None:
    from .display import _console, _esc

    console = _console()
    access = "public" if endpoint.public else "token"
    console.print(f"[bold]{_esc(endpoint.name)}[/] (revision {endpoint.revision}, {access}): "
                  f"{_esc(_routes_text(endpoint))}")
    if endpoint.url:
        console.print(_esc(f"  {endpoint.url}"))
    if history:
        for r in endpoint.revisions:
            routes = ", ".join(f"{x.model}@{x.version} {x.weight}%" for x in r.routes) or "-"
            forced = f" FORCED: {r.reason}" if r.forced else ""
            console.print(_esc(f"  r{r.revision} {r.at.astimezone():%Y-%m-%d %H:%M:%S} "
                               f"{r.action} by {r.actor}: {routes}{forced}"))


def print_deploy(result: DeployResult) -> None:
    from .display import _console

    print_endpoint(result.endpoint)
    console = _console()
    if result.forced:
        console.print("  [bold yellow]forced[/]: this version is not blessed; the reason is "
                      "recorded")
    if result.token:
        console.print("  token (shown once; send it as `Authorization: Bearer <token>`):")
        print(f"  {result.token}")
    if not result.endpoint.url:
        console.print("  serve it: jupyter mlplat serve   (then POST "
                      f"/v2/models/{result.endpoint.name}/infer)")
