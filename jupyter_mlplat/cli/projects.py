"""``jupyter mlplat project | share | unshare | shared``: projects and sharing from a shell.

Everything is private by default. ``project create`` makes a project (optionally following a
JupyterHub group), ``project add`` adds members, ``share model churn --project fraud`` lets the
project's members read the model (and load it with ``mlp.load_model("alice/churn")``, in safe
formats only), ``shared`` lists what others shared with you.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..schemas import ListSharedResponse, ProjectInfo

EXIT_OK = 0
KINDS = ("model", "endpoint", "pipeline", "schedule")


def add_parsers(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the project and sharing commands (``cmd`` adds one sub-command)."""
    p = cmd("project", "projects: groups of users that things can be shared with (names are "
                       "per owner: OWNER/NAME)")
    p.add_argument("action", choices=["create", "list", "show", "add", "remove", "delete"],
                   help="create NAME [USER...] | list | show NAME | add NAME USER... | "
                        "remove NAME USER... (remove yourself: leave) | delete NAME")
    p.add_argument("name", nargs="?", help="the project: NAME (yours) or OWNER/NAME "
                                           "(another's you belong to)")
    p.add_argument("users", nargs="*", metavar="USER", help="users to add or remove")
    p.add_argument("--hub-group", help="(create) members of this JupyterHub group (one you "
                                       "are in) belong too")
    p.add_argument("--description", default="", help="(create) what the project is for")

    p = cmd("share", "share a model, endpoint, pipeline or schedule of yours with a project "
                     "(its members may read it, never change it)")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("name", help="its name (a schedule: its name or id; a pipeline: its name "
                                "or notebook path)")
    p.add_argument("--project", required=True,
                   help="NAME (a project of yours) or OWNER/NAME (one you belong to)")

    p = cmd("unshare", "make a model, endpoint, pipeline or schedule of yours private again")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("name")

    p = cmd("shared", "what others shared with your projects (or, with --mine, what you "
                      "shared); with OWNER/NAME, one of them (a model: OWNER/NAME[@VERSION|"
                      "@ALIAS]; others with --kind; a schedule by its id)")
    p.add_argument("model", nargs="?", metavar="OWNER/NAME", help="show one shared item")
    p.add_argument("--kind", choices=KINDS, help="only this kind (with OWNER/NAME: its kind, "
                                                 "default model)")
    p.add_argument("--mine", action="store_true", help="what you shared, and with whom")


def _service(args: argparse.Namespace) -> Any:
    from ..tracking.sharing import SharingService
    from .main import _config

    return SharingService(_config(args))


def _needs(args: argparse.Namespace, name: bool = True, users: bool | None = False) -> None:
    """``users``: True needs at least one USER, False takes none, None takes any."""
    from ..errors import InvalidSpecError

    if name and not args.name:
        raise InvalidSpecError(f"project {args.action} needs the project's NAME")
    if users and not args.users:
        raise InvalidSpecError(f"project {args.action} needs at least one USER after the name")
    if users is False and args.users:
        raise InvalidSpecError(f"project {args.action} takes no users; got {args.users}")


def cmd_project(args: argparse.Namespace) -> int:
    from .main import _emit_json

    service = _service(args)
    try:
        action = args.action
        if action == "list":
            _needs(args, name=False)
            listing = service.list_projects()
            if args.json:
                _emit_json(listing)
            else:
                _print_projects(listing.projects)
            return EXIT_OK
        if action == "delete":
            _needs(args)
            unshared = service.delete_project(args.name)
            if args.json:
                _emit_json({"deleted": args.name, "unshared": unshared})
            else:
                _print(f"deleted project {args.name}; {unshared} shared item(s) are private "
                       "again")
            return EXIT_OK
        if action in ("add", "remove"):
            _needs(args, users=True)
            change = service.add_member if action == "add" else service.remove_member
            for user in args.users:
                project = change(args.name, user)
        elif action == "create":
            _needs(args, users=None)
            project = service.create_project(args.name, hub_group=args.hub_group,
                                             description=args.description, members=args.users)
        else:
            _needs(args)
            project = service.describe_project(args.name)
        if args.json:
            _emit_json(project)
        else:
            _print_project(project)
        return EXIT_OK
    finally:
        service.close()


def cmd_share(args: argparse.Namespace) -> int:
    from .main import _emit_json

    service = _service(args)
    try:
        item = service.share(args.kind, args.name, args.project)
    finally:
        service.close()
    if args.json:
        _emit_json(item)
    else:
        _print(f"shared {item.kind} {item.name} with project {item.project}: its members can "
               "read it, not change it")
    return EXIT_OK


def cmd_unshare(args: argparse.Namespace) -> int:
    from .main import _emit_json

    service = _service(args)
    try:
        item = service.unshare(args.kind, args.name)
    finally:
        service.close()
    if args.json:
        _emit_json(item)
    else:
        _print(f"{item.kind} {item.name} is private again")
    return EXIT_OK


def cmd_shared(args: argparse.Namespace) -> int:
    from .main import _emit_json

    service = _service(args)
    try:
        if args.model:
            item = service.describe(args.kind or "model", args.model)
            if args.json:
                _emit_json(item)
            else:
                _print_item(args.kind or "model", item)
            return EXIT_OK
        listing = service.my_shares() if args.mine else service.shared_with_me(args.kind)
    finally:
        service.close()
    if args.kind and args.mine:
        listing = ListSharedResponse(shared=[s for s in listing.shared if s.kind == args.kind])
    if args.json:
        _emit_json(listing)
        return EXIT_OK
    if not listing.shared:
        _print("you have shared nothing yet" if args.mine else
               "nothing is shared with you yet (others share with `jupyter mlplat share KIND "
               "NAME --project P` with a project you belong to)")
        return EXIT_OK
    from rich.table import Table

    from .display import _console, _esc

    table = Table("kind", "owner", "name", "project", box=None)
    for item in listing.shared:
        table.add_row(item.kind, _esc(item.owner), _esc(item.name), _esc(item.project or ""))
    _console().print(table)
    return EXIT_OK


def _print(text: str) -> None:
    from .display import _console, _esc

    _console().print(_esc(text))


def _print_item(kind: str, item: Any) -> None:
    if kind == "model":
        loadable = ("loadable here: mlp.load_model(" + repr(
            f"{item.owner}/{item.name}@{item.version}") + ")" if item.loadable else
            f"not loadable outside {item.owner}'s processes ({item.format} is not a safe "
            "format)")
        aliases = ", ".join(f"{a}->v{v}" for a, v in item.aliases.items()) or "none"
        _print(f"{item.owner}/{item.name} v{item.version} ({item.flavor}, {item.format}); "
               f"versions {item.versions}; aliases {aliases}; {loadable}")
    elif kind == "endpoint":
        current = item.revisions[-1] if item.revisions else None
        serves = (", ".join(f"{r.model}@{r.version} {r.weight}%" for r in current.routes)
                  if current and current.routes else "nothing")
        _print(f"endpoint {item.owner}/{item.name} serves {serves}; "
               f"{len(item.revisions)} revision(s); {'public' if item.public else 'token'}")
    elif kind == "pipeline":
        _print(f"pipeline {item.owner}/{item.name} ({item.path}): {len(item.runs)} run(s)")
        for run in item.runs:
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in run.metrics.items())
            _print(f"  {run.id}  {run.status:<11} {run.created_at:%Y-%m-%d %H:%M}  {metrics}")
    else:
        _print(f"schedule {item.owner}/{item.name} ({item.id}): {item.cron} {item.timezone}, "
               f"{'paused' if item.paused else 'next ' + str(item.next_fire_at)}; "
               f"{item.target} {item.notebook_path}")
        for firing in item.firings:
            _print(f"  {firing.slot_at:%Y-%m-%d %H:%M} {firing.kind:<8} {firing.status}")


def _print_projects(projects: list[ProjectInfo]) -> None:
    if not projects:
        _print("you belong to no project yet: `jupyter mlplat project create NAME` makes one")
        return
    from rich.table import Table

    from .display import _console, _esc

    table = Table("project", "owner", "you are", "members", "hub group", box=None)
    for p in projects:
        table.add_row(_esc(p.key), _esc(p.owner), p.role, _esc(", ".join(p.members) or "-"),
                      _esc(p.hub_group or "-"))
    _console().print(table)


def _print_project(p: ProjectInfo) -> None:
    group = f"; members of hub group {p.hub_group}" if p.hub_group else ""
    _print(f"project {p.key} (you are {p.role}){group}")
    if p.description:
        _print(f"  {p.description}")
    _print(f"  members: {', '.join(p.members) or 'none added'}")
    if p.shared:
        _print("  shared: " + ", ".join(f"{s.kind} {s.owner}/{s.name}" for s in p.shared))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "project": cmd_project, "share": cmd_share, "unshare": cmd_unshare, "shared": cmd_shared,
}
