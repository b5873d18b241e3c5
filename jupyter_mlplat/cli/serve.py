"""``jupyter mlplat serve``: run the serve process in the foreground until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
    p.add_argument("--admin-token-file", default=None, metavar="PATH",
                   help="read the admin API's token from PATH (default: generate one and "
                   "write it, mode 0600, to <jupyter data dir>/mlplat/serving-admin-token)")


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

    def ready(info: ServerInfo) -> None:
        print(f"serving on {info.url}", flush=True)
        if info.admin_token_file:
            print(f"admin token written to {info.admin_token_file}", flush=True)

    return run_server(config, host=args.host, port=args.port,
                      default_endpoint=args.default_endpoint, admin_token=token, on_ready=ready)


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
