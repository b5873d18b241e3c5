"""``jupyter mlplat schedule add|list|show|pause|resume|delete|run-now`` and ``scheduler``."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any

from ..errors import InvalidSpecError
from ..schemas import DescribeFiring, DescribeSchedule

EXIT_OK, EXIT_FAILED = 0, 1
ACTIONS = ("add", "list", "show", "pause", "resume", "delete", "run-now")


def add_parsers(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``schedule`` and ``scheduler`` on the main parser."""
    from .main import _Parser

    p = cmd("schedule", "fire a notebook or a pipeline on cron: add, list, show, pause, resume, "
                        "delete, run-now", json_flag=False)
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sub.required = True

    def action(name: str, help: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help, description=help)
        q.add_argument("--json", action="store_true", help="print one JSON document")
        return q

    q = action("add", "make a schedule (it fires at the next slot after now)")
    q.add_argument("notebook", help="the .ipynb to run")
    q.add_argument("--cron", required=True,
                   help="'minute hour day-of-month month day-of-week' (quote it), e.g. "
                        "'0 3 * * *', or @hourly, @daily, @weekly, @monthly")
    q.add_argument("--timezone", "--tz", default="UTC",
                   help="IANA timezone the cron fields are read in (default UTC)")
    q.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"),
                   help="a notebook parameter, typed like its default (repeatable)")
    q.add_argument("--pipeline", action="store_true",
                   help="run the notebook's steps as a pipeline (default: one papermill job)")
    q.add_argument("--name", help="schedule name (default: the notebook's file name)")
    q.add_argument("--deploy-if-blessed", metavar="MODEL",
                   help="after a successful run, deploy the version of MODEL it registered "
                        "if its validation policy blessed it")
    q.add_argument("--endpoint", help="with --deploy-if-blessed: the endpoint (default: "
                   "MODEL)")
    q.add_argument("--webhook", action="append", default=[], metavar="URL",
                   help="POST a JSON notification here (repeatable)")
    q.add_argument("--email", action="append", default=[], metavar="ADDRESS",
                   help="e-mail a notification here (needs smtp_host; repeatable)")
    q.add_argument("--notify-on", action="append", default=[],
                   choices=["failure", "success", "missed"],
                   help="when to notify (repeatable; default: failure)")
    q.add_argument("--missed", choices=["latest", "skip"], default="latest",
                   help="slots missed while no scheduler ran: fire once (latest, default) or "
                        "not at all (skip)")
    q.add_argument("--kernel", help="kernel for the notebook (default: the notebook's own)")
    q.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop the notebook after this long")
    q.add_argument("--paused", action="store_true", help="make it paused")

    action("list", "list your schedules with their next fire time and last firing")
    q = action("show", "one schedule: next fire times and history (each firing -> its run)")
    q.add_argument("schedule", help="id, id prefix or name")
    q.add_argument("--history", type=int, default=20, help="firings to show (default 20)")
    for name, help in (("pause", "stop firing on cron (run-now still works)"),
                       ("resume", "fire on cron again, from the next slot after now"),
                       ("delete", "delete a schedule (its firings and runs stay)")):
        q = action(name, help)
        q.add_argument("schedule", help="id, id prefix or name")
    q = action("run-now", "fire a schedule now, here, and wait for it (exit 1 if it fails); "
                          "under JupyterHub the scheduler service fires it and this waits")
    q.add_argument("schedule", help="id, id prefix or name")
    q.add_argument("--no-wait", action="store_true",
                   help="only queue it for a running scheduler and print the pending firing")

    p = cmd("scheduler", "run the scheduler loop in the foreground (a JupyterHub service, "
                         "systemd, any host) until SIGTERM or Ctrl-C", json_flag=False)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--owner", action="append", default=[], metavar="NAME",
                     help="fire this owner's schedules (repeatable; default: yours)")
    who.add_argument("--all-owners", action="store_true",
                     help="fire every owner's schedules (a JupyterHub service: needs "
                          "scheduler_service_url and a hub token with the 'tokens' scope, so "
                          "each kernel gets an owner-scoped store; see the README)")
    p.add_argument("--poll-interval", type=float, metavar="SECONDS",
                   help="seconds between polls (default: scheduler_poll_interval, 5)")
    p.add_argument("--once", action="store_true",
                   help="one poll: fire what is due, wait for it, exit")
    p.add_argument("--homes", metavar="TEMPLATE",
                   help="owners' home folders (their servers' root), e.g. '/home/{username}' "
                        "(the spawner's template): notebook paths are resolved inside them and "
                        "refused when they lead out; required with several owners")
    p.add_argument("--kernels", metavar="NAMES",
                   help="comma-separated kernels a firing may use (default: for several owners "
                        "python3,mlplat-python3; for one owner any installed kernel)")
    p.add_argument("--health-port", type=int, metavar="PORT",
                   help="serve GET /health (and $JUPYTERHUB_SERVICE_PREFIX/health) on this "
                        "port: 200 while the loop polls, 503 otherwise")
    p.add_argument("--health-ip", default="127.0.0.1", metavar="ADDRESS",
                   help="address of the health route (default 127.0.0.1)")
    p.add_argument("--allow-root", action="store_true",
                   help="with several owners: run even as root (a trial on one machine only: "
                        "every owner's notebooks would run as root)")


def _service(args: argparse.Namespace) -> Any:
    from ..scheduler.service import ScheduleService
    from .main import _config

    return ScheduleService(_config(args))


def cmd_schedule(args: argparse.Namespace) -> int:
    return {"add": _add, "list": _list, "show": _show, "pause": _change, "resume": _change,
            "delete": _change, "run-now": _run_now}[args.action](args)


def _add(args: argparse.Namespace) -> int:
    from ..scheduler.targets import parse_cli_parameter, resolve_notebook, target_spec
    from .main import _emit_json

    if args.endpoint and not args.deploy_if_blessed:
        raise InvalidSpecError("--endpoint goes with --deploy-if-blessed MODEL")
    target = "pipeline" if args.pipeline else "notebook"
    parameters: dict[str, Any] = {}
    if args.parameter:
        spec = target_spec(resolve_notebook(args.notebook, None), target)
        for name, raw in args.parameter:
            parameters[name] = parse_cli_parameter(spec, name, raw)
    on_success: dict[str, Any] = {}
    if args.deploy_if_blessed:
        on_success["deploy_if_blessed"] = {"model": args.deploy_if_blessed,
                                           "endpoint": args.endpoint}
    notify: dict[str, Any] = {"webhook": args.webhook, "email": args.email}
    if args.notify_on:
        notify["on"] = list(dict.fromkeys(args.notify_on))
    schedule = _service(args).create({
        "notebook": args.notebook, "cron": args.cron, "timezone": args.timezone,
        "parameters": parameters, "target": target, "name": args.name,
        "on_success": on_success, "notify": notify, "missed": args.missed,
        "kernel": args.kernel, "timeout": args.timeout, "paused": args.paused})
    if args.json:
        _emit_json(schedule)
    else:
        print_schedule(schedule, history=False)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from .display import _console, _esc
    from .main import _emit_json

    listing = _service(args).list()
    if args.json:
        _emit_json(listing)
        return EXIT_OK
    if not listing.schedules:
        print("no schedules yet: `jupyter mlplat schedule add NOTEBOOK --cron '0 3 * * *'`")
        return EXIT_OK
    from rich.table import Table

    table = Table(title_justify="left")
    for col in ("id", "name", "target", "cron", "timezone", "next", "last"):
        table.add_column(col)
    for s in listing.schedules:
        nxt = "paused" if s.paused else (s.next_fire_at.isoformat() if s.next_fire_at else "-")
        last = "-"
        if s.last_firing is not None:
            last = f"{s.last_firing.status} {s.last_firing.slot_at:%Y-%m-%d %H:%M}"
        table.add_row(s.id, _esc(s.name), s.target, _esc(s.cron), s.timezone, nxt, last)
    _console().print(table)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from .main import _emit_json

    if args.history < 0:
        raise InvalidSpecError(f"--history must be 0 or more; got {args.history}")
    schedule = _service(args).describe(args.schedule, history=args.history)
    if args.json:
        _emit_json(schedule)
    else:
        print_schedule(schedule, history=True)
    return EXIT_OK


def _change(args: argparse.Namespace) -> int:
    from .main import _emit_json

    service = _service(args)
    schedule = {"pause": service.pause, "resume": service.resume,
                "delete": service.delete}[args.action](args.schedule)
    if args.json:
        _emit_json(schedule)
    else:
        state = ("deleted" if schedule.deleted else "paused" if schedule.paused
                 else f"next {schedule.next_fire_at.isoformat() if schedule.next_fire_at else '-'}")
        print(f"schedule {schedule.id} ({schedule.name}): {state}")
    return EXIT_OK


def _run_now(args: argparse.Namespace) -> int:
    from ..hub.protocol import is_service_url
    from .main import _config, _emit_json

    config = _config(args)
    service = _service(args)
    firing = service.run_now(args.schedule)
    if not args.no_wait and is_service_url(config.store_url):
        # under JupyterHub the scheduler service fires it (this terminal has no database)
        return _wait_for_scheduler(args, service, firing)
    if not args.no_wait:
        from ..scheduler.loop import SchedulerLoop

        loop = SchedulerLoop(config)
        # SIGTERM stops the notebook too (its kernel interrupted, the firing interrupted);
        # Ctrl-C does the same through KeyboardInterrupt
        previous = signal.signal(signal.SIGTERM,
                                 lambda *a: loop.request_stop(interrupt=True))
        try:
            print(f"firing {firing.id}: running", file=sys.stderr)
            firing = loop.run_pending(firing.id)
        finally:
            signal.signal(signal.SIGTERM, previous)
            loop.stop()
    if args.json:
        _emit_json(firing)
    else:
        print_firing(firing)
    if args.no_wait:
        return EXIT_OK
    return EXIT_OK if firing.status == "succeeded" else EXIT_FAILED


#: Seconds between looks at a firing the scheduler service runs (the first, and at most: the
#: pause grows while nothing changes), before saying it still waits, and how long the store
#: service may stay unreachable before the CLI stops waiting.
WAIT_POLL, WAIT_POLL_MAX, PENDING_HINT_AFTER, UNREACHABLE_FOR = 1.0, 10.0, 60.0, 600.0


def _wait_for_scheduler(args: argparse.Namespace, service: Any, firing: DescribeFiring, *,
                        poll: float = WAIT_POLL) -> int:
    """Wait for the scheduler service to fire ``firing``, saying when its status changes.

    Ctrl-C stops the waiting, never the firing (exit 130). The store service being briefly
    unreachable (a hub restart) is waited out for up to ``UNREACHABLE_FOR`` seconds; after that,
    or when the service refuses this terminal's token, the error ends the command and says the
    firing goes on.
    """
    import time

    from ..errors import MLPlatError
    from ..store.remote import ServiceAuthError
    from .main import EXIT_INTERRUPTED, _emit_json

    def goes_on() -> None:
        print(f"stopped waiting; firing {firing.id} goes on in the scheduler service: "
              f"jupyter mlplat schedule show {args.schedule}", file=sys.stderr)

    print(f"firing {firing.id}: queued for the scheduler service (Ctrl-C stops waiting, not "
          "the firing)", file=sys.stderr)
    queued, delay, hinted, unreachable_since = time.monotonic(), poll, False, None
    try:
        while firing.status in ("pending", "running"):
            time.sleep(delay)
            try:
                seen = service.firing(firing.id)
            except ServiceAuthError:
                goes_on()
                raise
            except MLPlatError as error:
                now = time.monotonic()
                if unreachable_since is None:
                    unreachable_since = now
                    print(f"firing {firing.id}: cannot look at it now ({error}); still "
                          "waiting", file=sys.stderr)
                elif now - unreachable_since > UNREACHABLE_FOR:
                    goes_on()
                    raise
                delay = min(delay * 2, WAIT_POLL_MAX)
                continue
            if unreachable_since is not None:
                unreachable_since = None
                print(f"firing {firing.id}: the store service answers again", file=sys.stderr)
            if seen.status != firing.status:
                print(f"firing {firing.id}: {seen.status}", file=sys.stderr)
                delay = poll
            else:
                delay = min(delay * 1.5, WAIT_POLL_MAX)
                if (seen.status == "pending" and not hinted
                        and time.monotonic() - queued > PENDING_HINT_AFTER):
                    hinted = True
                    print(f"firing {firing.id}: still pending after {PENDING_HINT_AFTER:.0f} s: "
                          "it waits for an earlier firing of this schedule or of yours, or for "
                          "a free worker of the scheduler service, or that service is not "
                          "running (ask the hub's admin)", file=sys.stderr)
            firing = seen
    except KeyboardInterrupt:
        goes_on()
        return EXIT_INTERRUPTED
    if args.json:
        _emit_json(firing)
    else:
        print_firing(firing)
    return EXIT_OK if firing.status == "succeeded" else EXIT_FAILED


def cmd_scheduler(args: argparse.Namespace) -> int:
    import logging
    import os

    from ..scheduler.hardening import harden_dask_workers, harden_process
    from ..scheduler.isolation import serves_several_owners
    from ..scheduler.loop import SchedulerLoop
    from .main import _config

    if args.poll_interval is not None and args.poll_interval <= 0:
        raise InvalidSpecError(f"--poll-interval must be positive; got {args.poll_interval}")
    if args.health_port is not None and not 0 < args.health_port < 65536:
        raise InvalidSpecError(f"--health-port must be 1-65535; got {args.health_port}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    several = args.all_owners or len(set(args.owner)) > 1
    if several:
        # every owner's notebooks run as this process's OS user: keep its environment (the
        # database URL, its hub token) and memory out of their reach from the start
        from ..scheduler.hardening import make_non_dumpable

        make_non_dumpable()
    kernels = None
    if args.kernels is not None:
        kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    loop = SchedulerLoop(_config(args), owners=args.owner or None, all_owners=args.all_owners,
                         poll_interval=args.poll_interval, homes=args.homes, kernels=kernels)
    if several and os.geteuid() == 0 and not args.allow_root:
        loop.stop()
        raise InvalidSpecError(
            "a scheduler for several owners runs every owner's notebooks as its own OS user; "
            "as root they would run as root: run it as an unprivileged user (the hub "
            "service's 'user'), or pass --allow-root for a trial on one machine")
    if serves_several_owners(loop.owners):
        # every owner's notebooks run as this process's OS user: keep its environment (the
        # database URL, its hub token) and memory, and its Dask workers', out of their reach,
        # before any kernel starts
        harden_process()
        harden_dask_workers()
    owners = "all" if loop.owners is None else ", ".join(sorted(loop.owners))
    health = None
    if args.health_port is not None:
        from ..scheduler.health import HealthServer

        try:
            health = HealthServer(loop, args.health_ip, args.health_port,
                                  os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/").start()
        except InvalidSpecError:
            loop.stop()
            raise
    if args.once:
        try:
            loop.start_beat()  # a firing longer than the lease keeps its lease and heartbeat
            started = loop.tick()
            loop.drain()
        finally:
            loop.stop()
            if health is not None:
                health.close()
        print(f"scheduler {loop.id}: fired {len(started)} firing(s) (owners: {owners})")
        return EXIT_OK

    signals: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        # the first signal lets running firings finish for a while (see stop()); a second one
        # (JupyterHub sends SIGINT, then SIGTERM) interrupts them at once
        signals.append(signum)
        loop.request_stop(interrupt=len(signals) > 1)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(f"scheduler {loop.id} started (owners: {owners}; polling every "
          f"{loop.poll_interval:g}s)", flush=True)
    try:
        loop.run_forever()
    finally:
        try:
            loop.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if health is not None:
                health.close()
    print(f"scheduler {loop.id} stopped", flush=True)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "schedule": cmd_schedule,
    "scheduler": cmd_scheduler,
}


def print_firing(firing: DescribeFiring) -> None:
    from .display import _console, _esc

    console = _console()
    run = f" run {firing.run_id} ({firing.run_status})" if firing.run_id else ""
    duration = f" in {firing.duration:.1f}s" if firing.duration is not None else ""
    missed = f", stands for {firing.missed_slots} missed slot(s)" if firing.missed_slots else ""
    console.print(_esc(f"firing {firing.id} [{firing.kind}] {firing.slot_at.isoformat()}: "
                       f"{firing.status}{duration}{run}{missed}"))
    if firing.executed_notebook:
        console.print(_esc(f"  executed notebook: {firing.executed_notebook}"))
    if firing.error:
        console.print(_esc(f"  error: {firing.error}"))
    if firing.on_success is not None:
        console.print(_esc(f"  deploy_if_blessed: {firing.on_success.status}: "
                           f"{firing.on_success.detail}"))
    for n in firing.notifications:
        console.print(_esc(f"  {n.channel} {n.target} ({n.event}): {n.status}"
                           + (f" - {n.detail}" if n.detail else "")))


def print_schedule(schedule: DescribeSchedule, *, history: bool) -> None:
    from .display import _console, _esc

    console = _console()
    state = "deleted" if schedule.deleted else "paused" if schedule.paused else "active"
    console.print(f"[bold]{_esc(schedule.name)}[/] ({schedule.id}, {state}): "
                  f"{_esc(schedule.target)} {_esc(schedule.notebook)}")
    console.print(_esc(f"  cron '{schedule.cron}' in {schedule.timezone}, missed slots: "
                       f"{schedule.missed}"))
    if schedule.parameters:
        console.print(_esc(f"  parameters: {schedule.parameters}"))
    deploy = schedule.on_success.deploy_if_blessed
    if deploy is not None:
        console.print(_esc(f"  on success: deploy {deploy.model} to endpoint "
                           f"{deploy.endpoint or deploy.model} if blessed"))
    if schedule.notify.webhook or schedule.notify.email:
        where = [*(f"webhook {u.split('?')[0]}" for u in schedule.notify.webhook),
                 *(f"e-mail {a}" for a in schedule.notify.email)]
        console.print(_esc(f"  notify on {', '.join(schedule.notify.on)}: {', '.join(where)}"))
    if schedule.error:
        console.print(_esc(f"  [stopped] {schedule.error}"))
    for t in schedule.next_fire_times:
        console.print(_esc(f"  next: {t.isoformat()}"))
    if history:
        if not schedule.history:
            console.print("  no firings yet")
        for firing in schedule.history:
            print_firing(firing)
