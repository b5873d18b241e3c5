"""bob against alice's things through every front door: the REST routes of his server, his CLI
and the shared serve service's admin API (used by ``test_walk_as_bob``).

What is walked is derived from the code, not listed by hand, wherever the code can say it: the
REST calls from the server extension's route table (``ROUTES`` and each verb's ``ApiDoc``), the
CLI commands from its argparse parser, the serve routes from ``make_app``'s table and the admin
handlers of ``jupyter_mlplat.hub.serving``. A route, command or handler these tables do not know
how to fill makes the walk fail, so nothing new goes unwalked.

Every call is made twice: with alice's ids and names, and with made-up ones of the same shape
that never existed. The two answers must be the same once the made-up values in the second are
replaced by alice's: then the answer says nothing about whether alice's thing exists.
"""

from __future__ import annotations

import argparse
import http.client
import inspect
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import requests

from jupyter_mlplat.server.extension import ROUTES
from jupyter_mlplat.server.openapi import Route

#: The CLI as a user's terminal has it.
JUPYTER_MLPLAT = str(Path(sys.executable).parent / "jupyter-mlplat")
FORCE = {"force": True, "reason": "walk test: no validation policy"}


# -- names ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """The ids and names a caller puts into paths, queries, bodies and arguments."""

    run_id: str
    step: str
    model: str
    version: str
    alias: str
    endpoint: str
    schedule_id: str
    schedule_name: str
    notebook: str
    pipeline: str
    project: str

    #: Fields that name one of the owner's things (a made-up twin replaces them); the others
    #: (a step, a version, an alias) mean nothing without them.
    OWNED = ("run_id", "model", "endpoint", "schedule_id", "schedule_name", "notebook",
             "pipeline", "project")

    def made_up(self) -> Names:
        """Names of the same shape that nobody ever made."""
        tag = secrets.token_hex(4)
        return replace(self, run_id=secrets.token_hex(len(self.run_id) // 2),
                       model=f"nosuch-model-{tag}", endpoint=f"nosuch-ep-{tag}",
                       schedule_id=secrets.token_hex(len(self.schedule_id) // 2),
                       schedule_name=f"nosuch-schedule-{tag}",
                       notebook=f"nosuch_{tag}.ipynb", pipeline=f"nosuch_{tag}",
                       project=f"nosuch-project-{tag}")

    def secrets(self) -> list[str]:
        """The values no answer to another user may contain."""
        return [getattr(self, name) for name in self.OWNED]

    def by_reference(self) -> Names:
        """The same things named another way: a run by an id prefix, a schedule by its name, a
        version by its alias."""
        return replace(self, run_id=self.run_id[:8], schedule_id=self.schedule_name,
                       version=self.alias)


def pairs(alice: Names) -> list[tuple[str, Names, Names]]:
    """(label, alice's names, made-up twins): by id, and by reference."""
    fake = alice.made_up()
    return [("by id", alice, fake), ("by reference", alice.by_reference(), fake.by_reference())]


def as_alices(text: str, alice: Names, fake: Names) -> str:
    """``text`` (an answer to the made-up call) with each made-up value replaced by alice's."""
    swaps = sorted(((getattr(fake, f.name), getattr(alice, f.name)) for f in fields(Names)
                    if getattr(fake, f.name) != getattr(alice, f.name)),
                   key=lambda pair: -len(pair[0]))
    for made_up, real in swaps:
        text = text.replace(made_up, real)
    return text


def write_walk_pipeline(path: Path, model: str) -> None:
    """Two steps: data, then a scikit-learn model logged as ``model`` (skops) with a metric."""
    cells = [
        ("import numpy as np\nimport jupyter_mlplat as mlp\n"
         "from sklearn.linear_model import LogisticRegression", {"tags": ["imports"]}),
        ("X = np.array([[0.0], [1.0], [2.0], [3.0]])\ny = np.array([0, 0, 1, 1])\n"
         "print('rows', len(X))", {"mlplat": {"step": "load"}}),
        ("model = LogisticRegression().fit(X, y)\nmlp.log_metric('acc', model.score(X, y))\n"
         f"mlp.log_model(model, {model!r}, sample_input=X[:2])\nprint('trained')",
         {"mlplat": {"step": "train"}}),
    ]
    nb = nbformat.v4.new_notebook()
    for source, meta in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata.update(meta)
        nb.cells.append(cell)
    nbformat.write(nb, path)


def cli(hub: Any, user: str, cwd: Path, *args: Any, timeout: float = 300,
        **extra: str) -> subprocess.CompletedProcess[str]:
    """``jupyter-mlplat ARGS`` as in a terminal of ``user``'s server: their token, the
    services, their home folder."""
    home = hub.homes / user
    home.mkdir(parents=True, exist_ok=True)
    data = cwd / f".{user}-data"
    data.mkdir(parents=True, exist_ok=True)
    env = hub.user_env(user, data, MLPLAT_SERVING_URL=f"{hub.serve_url}/users/{user}",
                       HOME=str(home), **extra)
    return subprocess.run([JUPYTER_MLPLAT, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- the REST routes --------------------------------------------------------------------------

#: Routes that stream: walked by their own test (``events`` while alice acts), not here.
STREAMS = {"events"}

#: The owner whose things are walked, and the caller.
OWNER, CALLER = "alice", "bob"
#: A project of the caller's own (what he would share alice's things with).
CALLER_PROJECT = "walkproj-bob"

#: What can be shared (``shares/{kind}/{name}``): each kind, and the field naming one.
SHARE_FIELDS = {"model": "model", "endpoint": "endpoint", "pipeline": "pipeline",
                "schedule": "schedule_id"}
#: (first segment of the route, or its first two, path parameter) -> the ``Names`` field
#: filling it, or ``=value`` for a value that is not one of alice's things. The longer key
#: wins, so ``shared/<kind>s/...`` routes need their own entries.
PATH_PARAMS = {("runs", "run_id"): "run_id", ("runs", "step"): "step",
               ("models", "name"): "model", ("models", "version"): "version",
               ("models", "alias"): "alias", ("endpoints", "name"): "endpoint",
               ("schedules", "schedule_id"): "schedule_id", ("projects", "project"): "project",
               ("projects", "owner"): f"={OWNER}", ("projects", "user"): f"={CALLER}",
               **{(f"shared/{kind}s", "owner"): f"={OWNER}" for kind in SHARE_FIELDS},
               **{(f"shared/{kind}s", "name"): field for kind, field in SHARE_FIELDS.items()}}

#: A query of each query model, naming alice's things where it can.
QUERIES: dict[str, Callable[[Names], dict[str, str]]] = {
    "ListRunsQuery": lambda n: {"pipeline": n.pipeline},
    "DescribePipelineQuery": lambda n: {"notebook": n.notebook},
    "CompareRunsQuery": lambda n: {"runs": f"{n.run_id},{n.run_id}"},
    "PreviewScheduleQuery": lambda n: {"cron": "0 3 * * *"},
    "StepLogQuery": lambda n: {},
    "ListFiringsQuery": lambda n: {},
    "ListSharedQuery": lambda n: {},
    "SharedModelQuery": lambda n: {"version": n.version},
}

#: A valid body of each body model (so the call gets past validation to the lookup).
BODIES: dict[str, Callable[[Names], dict[str, Any]]] = {
    "CreateRun": lambda n: {"notebook": n.notebook},
    "RerunStep": lambda n: {"step": n.step},
    "UpdateAlias": lambda n: {"version": 1, "reason": "bob was here"},
    "CreateDeployment": lambda n: {"model": n.model, "endpoint": n.endpoint, **FORCE},
    "UpdateTraffic": lambda n: {"traffic": {f"{n.model}@1": 100}, **FORCE},
    "TryEndpoint": lambda n: {"inputs": {"instances": [[0.0]]}},
    "CreateSchedule": lambda n: {"notebook": n.notebook, "cron": "0 3 * * *",
                                 "name": n.schedule_name},
    "UpdateSchedule": lambda n: {"cron": "0 4 * * *"},
    "CreateProjectRequest": lambda n: {"name": n.project},
    "ShareRequest": lambda n: {"project": CALLER_PROJECT},
}


#: Routes that make something of the caller's own from a bare name, and the path that
#: deletes what they made (from their answer).
REST_CREATES: dict[tuple[str, str], Callable[[dict[str, Any]], str]] = {
    ("POST", "projects"): lambda made: f"projects/{made['owner']}/{made['name']}",
}


@dataclass(frozen=True)
class RestCall:
    """One verb of one route, filled with some names."""

    verb: str
    path: str
    params: dict[str, str]
    body: dict[str, Any] | None


def share_kinds() -> list[str]:
    """What the REST API shares (``ShareKind``), each one a field of ``SHARE_FIELDS``."""
    import typing

    from jupyter_mlplat.schemas import ShareKind

    kinds = list(typing.get_args(ShareKind))
    unknown = set(kinds) - set(SHARE_FIELDS)
    if unknown:
        raise LookupError(f"no field for sharing a {sorted(unknown)}; add it to SHARE_FIELDS "
                          "in tests/hub/rest_walk.py")
    return kinds


def rest_routes() -> list[tuple[str, Route, str | None]]:
    """(verb, route, kind) for every implemented verb of every route but the streams; a route
    with a ``{kind}`` parameter once per kind."""
    out: list[tuple[str, Route, str | None]] = []
    for route in ROUTES:
        if route.template in STREAMS:
            continue
        kinds: list[str | None] = share_kinds() if "kind" in route.params else [None]
        out += [(verb.upper(), route, kind) for verb in route.verbs() for kind in kinds]
    return out


def stream_routes() -> set[str]:
    """Templates of routes answering ``text/event-stream``."""
    return {route.template for route in ROUTES for doc in route.verbs().values()
            if doc is not None and doc.content_type == "text/event-stream"}


def rest_call(verb: str, route: Route, names: Names, kind: str | None = None) -> RestCall:
    """The call of ``verb`` on ``route`` with ``names`` in its path, query and body (and
    ``kind`` for a ``{kind}`` parameter).

    Raises
    ------
    LookupError
        A path parameter, query model or body model this walk does not know how to fill.
    """
    segments = route.template.split("/")
    values = {}
    for param in route.params:
        field = PATH_PARAMS.get(("/".join(segments[:2]), param),
                                PATH_PARAMS.get((segments[0], param)))
        if segments[0] == "shared" and ("/".join(segments[:2]), param) not in PATH_PARAMS:
            field = None  # what another user shared: each kind of thing its own entry
        if param == "kind" and kind is not None:
            values[param] = kind
            continue
        if param == "name" and kind is not None:
            field = SHARE_FIELDS[kind]
        if field is None:
            raise LookupError(f"{route.template}: no value for the path parameter {param!r}; "
                              "add it to PATH_PARAMS in tests/hub/rest_walk.py")
        values[param] = field[1:] if field.startswith("=") else getattr(names, field)
    doc = route.verbs()[verb.lower()]
    assert doc is not None
    params: dict[str, str] = {}
    body = None
    if doc.query is not None:
        if doc.query.__name__ not in QUERIES:
            raise LookupError(f"{verb} {route.template}: no query for {doc.query.__name__}; "
                              "add one to QUERIES in tests/hub/rest_walk.py")
        params = QUERIES[doc.query.__name__](names)
    if doc.body is not None:
        if doc.body.__name__ not in BODIES:
            raise LookupError(f"{verb} {route.template}: no body for {doc.body.__name__}; "
                              "add one to BODIES in tests/hub/rest_walk.py")
        body = doc.body.model_validate(BODIES[doc.body.__name__](names)).model_dump(
            mode="json", exclude_unset=True)
    return RestCall(verb, route.template.format(**values), params, body)


@dataclass(frozen=True)
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.text)
        except ValueError:
            return None


def call_rest(base: str, token: str, call: RestCall) -> Answer:
    """Make ``call`` against the REST API at ``base`` (``.../mlplat/api/``) with ``token``."""
    response = requests.request(
        call.verb, base + call.path, params=call.params or None,
        json=call.body if call.body is not None else (
            {} if call.verb in ("POST", "PUT", "PATCH") else None),
        headers={"Authorization": f"token {token}"}, timeout=60, allow_redirects=False)
    return Answer(response.status_code, response.text)


# -- the CLI ----------------------------------------------------------------------------------

#: Positional arguments that name an owner's thing.
CLI_ID_DESTS = {"run", "runs", "ref", "model", "endpoint", "schedule", "name"}
#: Commands that name none of an owner's things (they list, parse a notebook or run a process);
#: every command is either here or takes one of ``CLI_ID_DESTS``.
CLI_NO_ID = {("run",), ("steps",), ("runs",), ("db", "upgrade"), ("models",), ("serve",),
             ("service",), ("scheduler",), ("demo",), ("schedule", "add"),
             ("schedule", "list"), ("endpoints", "list"), ("project", "list")}
#: Commands that make something of the caller's own from a bare name (alice's name makes
#: bob's own project of that name, like a made-up one).
CLI_CREATES = {("project", "create")}
#: Optional positional arguments given although they name nothing of an owner's.
CLI_OPTIONAL = {("alias", "set"): {"version"}}
#: Options a command needs so that the lookup is what refuses it (not a missing flag).
CLI_OPTIONS: dict[tuple[str, ...], Callable[[Names], list[str]]] = {
    ("endpoints", "token"): lambda n: ["--rotate"],
    ("deploy",): lambda n: ["--endpoint", n.endpoint, "--force", "--reason", FORCE["reason"]],
}


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions  # noqa: SLF001 - argparse has no public listing
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def cli_commands() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command of ``jupyter mlplat``: sub-commands, theirs, and each choice of a leading
    ``action`` argument (``endpoints show``, ``alias set``)."""
    from jupyter_mlplat.cli.main import build_parser

    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions  # noqa: SLF001
                if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for name, sub in subs[0].choices.items():
                walk(sub, (*prefix, name))
            return
        positionals = _positionals(parser)
        if positionals and positionals[0].choices:
            for choice in positionals[0].choices:
                found[(*prefix, str(choice))] = parser
        else:
            found[prefix] = parser

    walk(build_parser(), ())
    return found


def cli_id_commands() -> list[tuple[str, ...]]:
    """The commands that take an id or a name of an owner's thing.

    Raises
    ------
    LookupError
        A command neither in ``CLI_NO_ID`` nor taking one of ``CLI_ID_DESTS``.
    """
    out = []
    for command, parser in cli_commands().items():
        if command in CLI_NO_ID:
            continue
        if not {a.dest for a in _positionals(parser)} & CLI_ID_DESTS:
            raise LookupError(f"`jupyter mlplat {' '.join(command)}` takes no id the walk "
                              "knows: add it to CLI_NO_ID or its argument to CLI_ID_DESTS in "
                              "tests/hub/rest_walk.py")
        out.append(command)
    return sorted(out)


def cli_argv(command: tuple[str, ...], names: Names, workdir: Path) -> list[str]:
    """The arguments of ``command`` naming alice's things (or their made-up twins)."""
    parser = cli_commands()[command]
    argv = list(command)
    positionals = _positionals(parser)
    if positionals and positionals[0].choices:
        positionals = positionals[1:]  # the action, already in ``command``
    data = workdir / "rows.csv"
    if not data.exists():
        data.write_text("x\n0.0\n3.0\n")
    fill: dict[str, list[str]] = {
        "run": [names.run_id], "runs": [names.run_id, names.run_id], "ref": [names.model],
        "model": [names.model], "endpoint": [names.endpoint], "schedule": [names.schedule_id],
        "alias": [names.alias], "version": ["1"], "data": [str(data)]}
    head = command[0]
    if head == "project":  # alice's project (OWNER/NAME); bob adds or removes himself
        fill.update(name=[names.project if command in CLI_CREATES
                          else f"{OWNER}/{names.project}"],
                    users=[CALLER] if command[1] in ("add", "remove") else [])
    elif head in ("share", "unshare"):
        fill.update(name=[getattr(names, SHARE_FIELDS[command[1]])])
    elif head == "shared":  # one model another user shared: OWNER/MODEL
        fill.update(model=[f"{OWNER}/{names.model}"])
    for action in positionals:
        if action.nargs in ("?", "*") and action.dest not in CLI_ID_DESTS | CLI_OPTIONAL.get(
                command, set()) | {"users"}:
            continue
        if action.dest not in fill:
            raise LookupError(f"`jupyter mlplat {' '.join(command)}`: no value for its "
                              f"argument {action.dest!r}; add one to cli_argv")
        argv += fill[action.dest]
    required = {"output": str(workdir / f"out-{secrets.token_hex(4)}"),
                "project": CALLER_PROJECT}
    for action in parser._actions:  # noqa: SLF001 - required options (batch-predict -o)
        if action.option_strings and action.required:
            if action.dest not in required:
                raise LookupError(f"`jupyter mlplat {' '.join(command)}`: no value for its "
                                  f"required option {action.option_strings[0]}")
            argv += [action.option_strings[0], required[action.dest]]
    return argv + CLI_OPTIONS.get(command, lambda n: [])(names)


# -- the shared serve service ------------------------------------------------------------------

#: The admin routes a user's path of the shared serve process adds (``OwnerServing``), by the
#: handler class serving them: checked against the classes and verbs of
#: ``jupyter_mlplat.hub.serving``.
OWNER_ADMIN_ROUTES = [
    ("GET", "admin/endpoints", "EndpointsAdminHandler"),
    ("POST", "admin/endpoints", "EndpointsAdminHandler"),
    ("GET", "admin/endpoints/{m}", "EndpointAdminHandler"),
    ("DELETE", "admin/endpoints/{m}", "EndpointAdminHandler"),
    ("PUT", "admin/endpoints/{m}/traffic", "EndpointActionHandler"),
    ("POST", "admin/endpoints/{m}/rollback", "EndpointActionHandler"),
    ("POST", "admin/endpoints/{m}/token", "EndpointActionHandler"),
]
_VERBS = ("get", "post", "put", "patch", "delete")


def _verbs(handler: type) -> set[str]:
    import tornado.web

    return {verb.upper() for verb in _VERBS
            if getattr(handler, verb) is not getattr(tornado.web.RequestHandler, verb)}


def _fill_pattern(pattern: str) -> list[str]:
    """Path templates (``{m}`` for the endpoint) a ``make_app`` pattern matches."""
    text = pattern.lstrip("^/").removesuffix("$").replace("/?", "")
    out = []
    for versions in ("", "/versions/1"):
        filled = text.replace("(?:/versions/([^/]+))?", versions)
        filled = filled.replace("([^/:]+)", "{m}").replace("([^/]+)", "{m}")
        alternatives = re.fullmatch(r"(.*)\(([a-z|]+)\)(.*)", filled)
        if alternatives:
            head, words, tail = alternatives.groups()
            out += [head + word + tail for word in words.split("|")]
        else:
            out.append(filled)
    return sorted(set(out))


def serve_routes() -> list[tuple[str, str, bool]]:
    """(verb, path template, admin?) of every route of a user's path on the shared serve
    process that names an endpoint or changes the user's endpoints.

    The protocol routes come from ``make_app``'s table; the admin routes ``OwnerServing`` adds
    from ``OWNER_ADMIN_ROUTES``, which must match the admin handler classes of
    ``jupyter_mlplat.hub.serving`` and the verbs they implement.
    """
    import jupyter_mlplat.hub.serving as hub_serving
    from jupyter_mlplat.serving.app import AdminHandler, make_app
    from jupyter_mlplat.serving.metrics import ServingMetrics
    from jupyter_mlplat.serving.service import ServeSettings

    app = make_app(None, ServeSettings(), metrics=ServingMetrics())  # type: ignore[arg-type]
    out: set[tuple[str, str, bool]] = set()
    for rule in app.wildcard_router.rules:
        handler = rule.target
        admin = issubclass(handler, AdminHandler)
        pattern = rule.matcher.regex.pattern
        if not admin and "(" not in pattern:
            continue  # names no endpoint (health, metadata of the server, /invocations)
        for template in _fill_pattern(pattern):
            for verb in _verbs(handler):
                out.add((verb, template, admin))
    classes = {name: cls for name, cls in vars(hub_serving).items()
               if inspect.isclass(cls) and issubclass(cls, AdminHandler)
               and cls.__module__ == hub_serving.__name__ and not name.startswith("_")}
    listed = {(name, verb) for verb, _, name in OWNER_ADMIN_ROUTES}
    served = {(name, verb) for name, cls in classes.items() for verb in _verbs(cls)}
    if listed != served:
        raise LookupError(f"OWNER_ADMIN_ROUTES in tests/hub/rest_walk.py lists {sorted(listed)}"
                          f" but jupyter_mlplat.hub.serving serves {sorted(served)}")
    out |= {(verb, template, True) for verb, template, _ in OWNER_ADMIN_ROUTES}
    return sorted(out)


def serve_body(verb: str, template: str, names: Names) -> dict[str, Any] | None:
    """A valid body for the shared serve routes that read one."""
    if template == "admin/endpoints" and verb == "POST":
        return {"model": names.model, "endpoint": names.endpoint, **FORCE}
    if template.endswith("/traffic"):
        return {"traffic": {f"{names.model}@1": 100}, **FORCE}
    if template.endswith("/infer"):
        return {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [0.0]}]}
    if template.endswith((":predict", "/invocations")):
        return {"instances": [[0.0]]}
    return None


def call_serve(hub: Any, owner: str, verb: str, path: str, token: str | None,
               body: dict[str, Any] | None) -> Answer:
    headers = {"Authorization": f"token {token}"} if token else {}
    response = requests.request(verb, f"{hub.serve_url}/users/{owner}/{path}", json=body,
                                data=None if body is not None or verb != "POST" else b"",
                                headers=headers, timeout=60)
    return Answer(response.status_code, response.text)


# -- what alice has ---------------------------------------------------------------------------


def fingerprint(store: Any, names: Names) -> dict[str, Any]:
    """What of alice's run, model, endpoint and schedule another user must not change."""
    run = store.run_row(names.run_id)
    schedule = store.schedule_row(names.schedule_id)
    endpoint = store.endpoint_row(names.endpoint)
    return {
        "run": (run.status, run.error, run.cancel_requested, str(run.finished_at)),
        "steps": [(s.step_name, s.status, s.attempt, s.executed_notebook)
                  for s in store.step_runs(names.run_id, latest=False)],
        "params": sorted((p.name, str(p.value)) for p in store.params([names.run_id])),
        "metrics": sorted((m.name, m.value) for m in store.metrics([names.run_id])),
        "versions": [(v.version, v.id, v.artifact_id) for v in
                     store.model_versions(names.model)],
        "aliases": store.aliases(names.model),
        "alias_events": len(store.alias_history(names.model)),
        "revisions": [(r.revision, r.action, r.actor, r.routes)
                      for r in store.endpoint_revisions(names.endpoint)],
        "endpoint": (endpoint.token_hash, endpoint.public),
        "schedule": (schedule.name, schedule.paused, schedule.deleted_at, schedule.cron,
                     str(schedule.next_fire_at)),
        "firings": [f.id for f in store.firings(names.schedule_id)],
        "project": _project(store, names.project),
    }


def _project(store: Any, name: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Members of one of the owner's projects, and what is shared with it."""
    project = store.project(name)
    return (list(project["members"]),
            sorted((item["kind"], item["name"]) for item in project["shared"]))


# -- the event stream -------------------------------------------------------------------------


class EventStream:
    """A ``GET events`` stream read on a thread (``with``): ``text`` is what came so far."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=60)
        self._target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Authorization": f"token {token}", "Accept": "text/event-stream"}
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="walk-events", daemon=True)
        self.status: int | None = None

    def __enter__(self) -> EventStream:
        self._conn.request("GET", self._target, headers=self._headers)
        response = self._conn.getresponse()
        self.status = response.status
        self._response = response
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            while True:
                chunk = self._response.read1(65536)
                if not chunk:
                    return
                with self._lock:
                    self._chunks.append(chunk.decode(errors="replace"))
        except (OSError, http.client.HTTPException, ValueError):
            return  # closed by __exit__

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return needle in self.text
            time.sleep(0.1)
        return True

    def __exit__(self, *exc: Any) -> None:
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        self._conn.close()


def events_of(text: str) -> Iterator[tuple[str, str]]:
    """(event type, data) of each event in a server-sent-event text."""
    for block in text.split("\n\n"):
        kind = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: "):
                data = line[len("data: "):]
        if kind is not None and data is not None:
            yield kind, data
