"""``jupyter mlplat serve``: run the serve process in the foreground until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidSpecError

EXIT_OK = 0


def add_parsers(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``serve`` on the main parser (``cmd`` adds one sub-command)."""
    p = cmd("serve", "serve your deployed endpoints over HTTP (V2, V1 and MLflow protocols)",
            json_flag=False)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1)")
    p.add_argument("--port", type=int, default=8500, help="port (default 8500; 0: a free one)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="SQLAlchemy URL of the store (default: MLPLAT_STORE_URL or the config)")
    p.add_argument("--default-endpoint", default=None, metavar="NAME",
                   help="where plain /invocations goes (default: the only endpoint)")
    p.add_argument("--safe-formats-only", action="store_true",
                   help="a shared serve process: load only formats that run no producer code "
                   "(skops with the project's trusted types); pickled, tree and torch models "
                   "(TorchScript can read the process's files) are refused")
    p.add_argument("--max-body-size", type=float, default=16.0, metavar="MIB",
                   help="largest request body in MiB (default 16; larger: 413)")
    p.add_argument("--max-batch", type=int, default=64, metavar="ROWS",
                   help="rows gathered into one predict call (default 64)")
    p.add_argument("--max-wait-ms", type=float, default=1.0, metavar="MS",
                   help="longest a request waits for others to batch with (default 1.0)")
    p.add_argument("--admin-token-file", default=None, metavar="PATH",
                   help="read the admin API's token from PATH (default: generate one and "
                   "write it, mode 0600, to <jupyter data dir>/mlplat/serving-admin-token)")
    # -- JupyterHub: one serve process for every user (jupyter_mlplat.hub.serving)
    p.add_argument("--shared", action="store_true",
                   help="serve every user's endpoints (a JupyterHub service), each user's under "
                   "/users/<name>/, safe formats only; the admin API takes the user's hub token "
                   "with the scope custom:mlplat:deploy. Listens where JUPYTERHUB_SERVICE_URL "
                   "says when set")
    p.add_argument("--public-url", default="", metavar="URL",
                   help="with --shared: the URL users reach the service at (endpoint URLs in "
                   "admin answers), e.g. https://hub.example.org/services/mlplat-serve")


def cmd_serve(args: argparse.Namespace) -> int:
    from ..config import MLPlat
    from ..serving.server import ServerInfo, run_server

    if not 0 <= args.port <= 65535:
        raise InvalidSpecError(f"--port must be 0-65535; got {args.port}")
    config = MLPlat()
    if args.store:
        config.store_url = args.store
    token = None
    if args.admin_token_file:
        path = Path(args.admin_token_file).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise InvalidSpecError(f"cannot read --admin-token-file {str(path)!r}: "
                                   f"{exc.strerror}")
        if not token:
            raise InvalidSpecError(f"--admin-token-file {str(path)!r} is empty")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    # one line per request costs ~7% of the CPU of a small model's request; errors still log
    logging.getLogger("tornado.access").setLevel(logging.WARNING)

    def ready(info: ServerInfo) -> None:
        print(f"serving on {info.url}", flush=True)
        if info.admin_token_file:
            print(f"admin token written to {info.admin_token_file}", flush=True)

    from pydantic import ValidationError

    from ..serving.service import ServeSettings

    try:
        settings = ServeSettings(max_body_size=int(args.max_body_size * 1024 * 1024),
                                 max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                                 trusted=not args.safe_formats_only)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidSpecError(f"bad serve option: {problems}") from None
    if getattr(args, "shared", False):
        return _serve_shared(args, config, settings, token)
    return run_server(config, host=args.host, port=args.port,
                      default_endpoint=args.default_endpoint, admin_token=token, on_ready=ready,
                      settings=settings)


def _serve_shared(args: argparse.Namespace, config: Any, settings: Any, token: str | None) -> int:
    """``serve --shared``: every user's endpoints in one process (a JupyterHub service)."""
    import asyncio
    import os

    from ..hub.server import service_address
    from ..hub.serving import serve_shared
    from ..scheduler.hardening import make_non_dumpable

    # it holds the database URL and serves everyone: no process of its OS user (a scheduled
    # kernel on a one-machine hub) may read its environment or memory
    make_non_dumpable()
    hub_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    address = service_address(None if hub_url else args.host, None if hub_url else args.port)
    public_url = args.public_url or f"http://{address.host}:{address.port}" \
        f"{'/' + address.prefix.strip('/') if address.prefix.strip('/') else ''}"

    def ready(url: str) -> None:
        print(f"serving every user's endpoints on {url}users/<name>/", flush=True)

    asyncio.run(serve_shared(config.store_url, config.artifacts_url, address, settings,
                             admin_token=token, public_url=public_url, on_ready=ready))
    return EXIT_OK


COMMANDS = {"serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jupyter_mlplat.cli.serve [options]``: the serve command on its own."""
    from ..errors import MLPlatError

    parser = argparse.ArgumentParser(prog="python -m jupyter_mlplat.cli.serve")
    sub = parser.add_subparsers(dest="command")

    def cmd(name: str, help: str, json_flag: bool = True) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    add_parsers(cmd)
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_serve(args)
    except MLPlatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
