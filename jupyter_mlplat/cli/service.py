"""``jupyter mlplat service``: the store and artifacts over HTTP for JupyterHub users."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable


def add_parsers(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``service`` on the main parser (``cmd`` adds one sub-command)."""
    p = cmd("service", "run the store service (a JupyterHub service): users reach the shared "
            "store and artifacts over HTTP with their hub token, each seeing only their own",
            json_flag=False)
    p.add_argument("--store", default=None, metavar="URL",
                   help="SQLAlchemy URL of the shared store (default: MLPLAT_STORE_URL)")
    p.add_argument("--artifacts", default=None, metavar="URL",
                   help="root of the shared artifact store, a folder or fsspec URL (default: "
                   "MLPLAT_ARTIFACTS_URL); each user gets users/<name>/ under it")
    p.add_argument("--host", default=None,
                   help="address to listen on (default: from JUPYTERHUB_SERVICE_URL, else "
                   "127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help="port (default: from JUPYTERHUB_SERVICE_URL, else 8765; 0: a free one)")
    p.add_argument("--prefix", default=None,
                   help="URL prefix (default: JUPYTERHUB_SERVICE_PREFIX, else /)")


def cmd_service(args: argparse.Namespace) -> int:
    from ..config import MLPlat
    from ..hub.server import run_service, service_address
    from ..scheduler.hardening import make_non_dumpable

    # the one process with the database credentials: no process of its OS user (a scheduled
    # kernel on a one-machine hub) may read its environment or memory
    make_non_dumpable()
    config = MLPlat()
    store_url = args.store or config.store_url
    artifacts_url = args.artifacts or config.artifacts_url
    address = service_address(args.host, args.port, args.prefix)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)

    def ready(url: str) -> None:
        print(f"store service on {url}", flush=True)

    return run_service(store_url, artifacts_url, address, on_ready=ready)


COMMANDS = {"service": cmd_service}
