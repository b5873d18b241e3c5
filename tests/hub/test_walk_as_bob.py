"""bob walks every REST route, every CLI command and the shared serve admin API against alice's
things, through a real JupyterHub (``-m hub``).

alice makes her things through her own front doors: her CLI runs a pipeline (executed step
notebooks, logs, a scikit-learn model saved with skops), points an alias at the version, deploys
it on the shared serve service, adds a schedule, and shares all four with a project of hers that
carol belongs to (bob does not). bob then calls, with his own hub token:

- every verb of every route of his server's REST API (the route table decides which), with
  alice's ids and names in the path, query and body;
- his server's event stream while alice acts;
- every CLI command that names a run, model, endpoint, schedule, project or shared thing (the
  argparse parser decides which);
- every route of alice's path on the shared serve service, and of his own path naming alice's
  endpoint.

Each answer must be what the same call with made-up names of the same shape gets (404 where a
thing is named), so nothing says that alice's things exist; listings hold none of them; and
alice's run, model, aliases, endpoint, schedule and project are as she left them, her endpoint
still serving her version. Where a read names one of alice's things, alice (or carol, for what
alice shared) gets it with the same call, so a 404 for bob is never a wrongly filled path.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from jupyter_mlplat.server.extension import ROUTES

from .rest_walk import (
    CALLER_PROJECT,
    CLI_CREATES,
    CLI_NO_ID,
    FORCE,
    REST_CREATES,
    STREAMS,
    Answer,
    EventStream,
    Names,
    RestCall,
    as_alices,
    call_rest,
    call_serve,
    cli,
    cli_argv,
    cli_commands,
    cli_id_commands,
    events_of,
    fingerprint,
    pairs,
    rest_call,
    rest_routes,
    serve_body,
    serve_routes,
    stream_routes,
    write_walk_pipeline,
)

pytestmark = pytest.mark.hub

MODEL, ENDPOINT, SCHEDULE = "walkmodel-alice", "walkep-alice", "walksched-alice"
NOTEBOOK, PROJECT = "walk_alice.ipynb", "walkproj-alice"
ROWS = {"instances": [[0.0], [3.0]]}
#: Answers that mean the call never reached the REST handler (login redirect, no auth).
NOT_REACHED = (301, 302, 401, 403)
#: Routes that take ids only (not a name or prefix): no reader finds the thing by reference.
BY_ID_ONLY: set[tuple[str, str]] = set()
#: Serve routes that list the caller's own endpoints.
SERVE_LISTINGS = {("GET", "admin/endpoints"), ("POST", "v2/repository/index")}


def _safe(derive: Any) -> list[Any]:
    """What ``derive()`` lists, or nothing when it cannot (then
    ``test_the_walk_covers_every_route_command_and_handler`` says why)."""
    try:
        return derive()
    except LookupError:
        return []


#: Cases that show a leak or a wrong status in the product: (kind, id) -> reason (each one an
#: ``xfail(strict=True)``, so a fix makes the test fail until the entry goes).
KNOWN: dict[tuple[str, str], str] = {}


def _params(kind: str, cases: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    return [pytest.param(*values, id=case_id, marks=[pytest.mark.xfail(
        strict=True, reason=KNOWN[(kind, case_id)])] if (kind, case_id) in KNOWN else [])
        for case_id, values in cases]


REST_CASES = _params("rest", [(f"{verb} {route.template}" + (f" {kind}" if kind else ""),
                               (verb, route, kind))
                              for verb, route, kind in _safe(rest_routes)])
CLI_CASES = _params("cli", [(" ".join(command), (command,))
                            for command in _safe(cli_id_commands)])
SERVE_CASES = _params("serve", [(f"{verb} {template}", (verb, template, admin))
                                for verb, template, admin in _safe(serve_routes)])


# -- alice's things and bob's server -----------------------------------------------------------


@dataclass
class Alice:
    names: Names
    endpoint_token: str
    store: Any
    before: dict[str, Any]

    def unchanged(self) -> None:
        """Everything of alice's is as it was before bob began."""
        assert fingerprint(self.store, self.names) == self.before

    def predict(self, hub: Any) -> requests.Response:
        return requests.post(f"{hub.serve_url}/users/alice/v1/models/{self.names.endpoint}"
                             ":predict", json=ROWS, timeout=60,
                             headers={"Authorization": f"Bearer {self.endpoint_token}"})


def _ok(proc: Any) -> Any:
    assert proc.returncode == 0, (proc.args, proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(proc.stdout) if proc.stdout.lstrip().startswith(("{", "[")) else None


@pytest.fixture(scope="module")
def spawned(hub) -> Any:
    """alice's, bob's and carol's own servers asked of the hub (they start while alice
    works); stopped at the end."""
    users = ("alice", "bob", "carol")
    for user in users:
        hub.user(user)
        (hub.homes / user).mkdir(parents=True, exist_ok=True)
        hub.api("POST", f"users/{user}/server", expect=(201, 202, 400))  # 400: running
    try:
        yield users
    finally:
        for user in users:
            hub.api("DELETE", f"users/{user}/server", expect=(202, 204))


@pytest.fixture(scope="module")
def alice(hub, spawned) -> Alice:
    """alice's run, model version with an alias, endpoint and schedule, all made with her CLI
    (her token and the services, as in a terminal of her server)."""
    home = hub.homes / "alice"
    home.mkdir(parents=True, exist_ok=True)
    write_walk_pipeline(home / NOTEBOOK, MODEL)
    run = _ok(cli(hub, "alice", home, "run", NOTEBOOK, "--json"))
    assert run["status"] == "succeeded", run
    assert {s["name"]: s["status"] for s in run["steps"]} == {"load": "succeeded",
                                                              "train": "succeeded"}
    _ok(cli(hub, "alice", home, "alias", "set", MODEL, "production", "1"))
    deployed = _ok(cli(hub, "alice", home, "deploy", f"{MODEL}@production", "--endpoint",
                       ENDPOINT, "--force", "--reason", FORCE["reason"], "--json"))
    schedule = _ok(cli(hub, "alice", home, "schedule", "add", NOTEBOOK, "--cron", "0 3 * * *",
                       "--name", SCHEDULE, "--json"))
    # a project of hers with carol in it (bob is no member), everything shared with it: carol
    # reads it where bob must get what a made-up name gets
    _ok(cli(hub, "alice", home, "project", "create", PROJECT))
    _ok(cli(hub, "alice", home, "project", "add", PROJECT, "carol"))
    shares = {"model": MODEL, "endpoint": ENDPOINT, "pipeline": run["pipeline"],
              "schedule": schedule["id"]}
    with ThreadPoolExecutor(4) as pool:
        for proc in pool.map(lambda item: cli(hub, "alice", home, "share", *item, "--project",
                                              PROJECT), shares.items()):
            _ok(proc)
    carols = home.parent / "carol"
    model = _ok(cli(hub, "carol", carols, "shared", f"alice/{MODEL}@1", "--json"))
    assert (model["owner"], model["name"], model["loadable"]) == ("alice", MODEL, True)
    listed = _ok(cli(hub, "carol", carols, "shared", "--json"))["shared"]
    assert {(i["kind"], i["owner"], i["name"]) for i in listed} >= {
        ("model", "alice", MODEL), ("endpoint", "alice", ENDPOINT),
        ("pipeline", "alice", run["pipeline"]), ("schedule", "alice", SCHEDULE)}, listed
    store = hub.store("alice")
    names = Names(run_id=run["id"], step="train", model=MODEL, version="1", alias="production",
                  endpoint=ENDPOINT, schedule_id=schedule["id"], schedule_name=SCHEDULE,
                  notebook=NOTEBOOK, pipeline=run["pipeline"], project=PROJECT)
    # what bob is after is real: executed notebooks, a skops model, a served endpoint
    assert all(s.executed_notebook for s in store.step_runs(names.run_id))
    version = store.model_version(MODEL, 1)
    assert store.artifact_ref(version.artifact_id)["format"] == "skops"
    made = Alice(names, deployed["token"], store, {})
    deadline = time.monotonic() + 90
    while (answer := made.predict(hub)).status_code != 200:
        assert answer.status_code in (404, 503), answer.text
        assert time.monotonic() < deadline, (answer.status_code, answer.text, hub.log_tail())
        time.sleep(0.3)
    assert answer.headers["X-Model-Version"] == f"{MODEL}@1"
    made.before = fingerprint(store, names)
    assert made.before["aliases"] == {"production": 1} and made.before["revisions"]
    assert made.before["project"] == (["carol"], sorted([
        ("endpoint", ENDPOINT), ("model", MODEL), ("pipeline", run["pipeline"]),
        ("schedule", SCHEDULE)]))
    return made


@pytest.fixture(scope="module")
def bob_project(hub, tmp_path_factory) -> str:
    """A project of bob's own: what he would share alice's things with."""
    _ok(cli(hub, "bob", tmp_path_factory.mktemp("bob"), "project", "create", CALLER_PROJECT))
    return CALLER_PROJECT


@pytest.fixture(scope="module")
def servers(hub, spawned, alice, bob_project) -> dict[str, str]:
    """The users' own servers, once ready: the base URL of each one's REST API."""
    deadline = time.monotonic() + 90
    for user in spawned:
        while not hub.api("GET", f"users/{user}")["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.3)
    return {user: f"{hub.url}user/{user}/mlplat/api/" for user in spawned}


@pytest.fixture(scope="module")
def bob_api(servers) -> str:
    return servers["bob"]


def test_the_walk_covers_every_route_command_and_handler(tmp_path):
    """Everything the tables of the code list is walked: a route, command or admin handler
    the walk cannot fill is named here (and would be missing from the cases below)."""
    names = _any_names()
    assert stream_routes() == STREAMS, "a new streaming route: walk it like `events`"
    assert len(REST_CASES) == len(rest_routes()) >= sum(len(r.verbs()) for r in ROUTES) - len(
        STREAMS)
    for verb, route, kind in rest_routes():
        rest_call(verb, route, names, kind)
    commands = cli_id_commands()
    assert len(CLI_CASES) == len(commands) > 0
    assert set(cli_commands()) == set(commands) | CLI_NO_ID, (
        "a command in CLI_NO_ID that the CLI no longer has")
    for command in commands:
        cli_argv(command, names, tmp_path)
    assert len(SERVE_CASES) == len(serve_routes()) > 0


def test_bobs_server_acts_for_bob(hub, bob_api):
    """The walk above reached bob's own server as bob (not a login page, not alice's)."""
    answer = call_rest(bob_api, hub.user("bob"), rest_call("GET", _route("version"),
                                                            _any_names()))
    assert answer.status == 200 and answer.json()["owner"] == "bob", answer


def _route(template: str) -> Any:
    return next(route for _, route, _ in rest_routes() if route.template == template)


def _any_names() -> Names:
    return Names("0" * 12, "s", "m", "1", "a", "e", "1" * 12, "n", "x.ipynb", "x", "p")


# -- REST --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("verb", "route", "kind"), REST_CASES)
def test_every_rest_route_answers_bob_as_if_alices_things_did_not_exist(hub, alice, servers,
                                                                        bob_api, verb, route,
                                                                        kind):
    token = hub.user("bob")
    for label, theirs, fake in pairs(alice.names):
        call = rest_call(verb, route, theirs, kind)
        if verb == "GET" and route.params and (label, route.template) not in BY_ID_ONLY:
            # the names are right: alice reads her thing, carol (in alice's project) what
            # alice shared
            reader = "carol" if route.template.startswith("shared/") else "alice"
            hers = call_rest(servers[reader], hub.user(reader), call)
            assert hers.status == 200, (reader, call, hers)
        got = call_rest(bob_api, token, call)
        missing = call_rest(bob_api, token, rest_call(verb, route, fake, kind))
        where = (verb, call.path, label, got.status, got.text[:500])
        undo = REST_CREATES.get((verb, route.template))
        if undo is not None and got.status in (200, 201):
            # bob made his own thing of alice's name, as he did of the made-up one
            assert missing.status == got.status, (where, missing)
            for made in (got, missing):
                assert made.json()["owner"] == "bob", made
                gone = call_rest(bob_api, token, RestCall("DELETE", undo(made.json()), {}, None))
                assert gone.status == 200, gone
            continue
        if route.params:  # names one of alice's things: refused as if it did not exist
            assert got.status == 404, where
            assert (got.json() or {}).get("error") == "NotFoundError", where
        else:  # a listing or a creation: bob's own world, nothing of alice's in it
            assert got.status not in NOT_REACHED, where
            assert (got.json() or {}).get("error") != "ValidationError", where
            if verb == "POST":
                assert got.status >= 400, where  # nothing made from alice's names
            sent = json.dumps([call.path, call.params, call.body])
            leaked = [s for s in alice.names.secrets() if s in got.text and s not in sent]
            assert not leaked, where
        assert got == Answer(missing.status, as_alices(missing.text, theirs, fake)), (
            where, missing.status, missing.text[:500])
    if verb != "GET":
        alice.unchanged()


def test_bobs_event_stream_carries_nothing_of_alices_while_she_acts(hub, alice, bob_api):
    """bob's ``events`` stream, open while alice starts and ends a run, deploys an endpoint
    and adds a schedule: bob's own changes arrive, none of alice's."""
    bob = hub.store("bob")
    own_pipeline = bob.pipeline_id("walk-events", "walk_events.ipynb")

    def bobs_run() -> str:
        run_id = bob.create_run(pipeline_id=own_pipeline, pipeline_version="v",
                                notebook_path="walk_events.ipynb", parameters={}, options={},
                                steps=["s"])
        bob.finish_run(run_id, "succeeded")
        return run_id

    theirs = alice.store
    with EventStream(bob_api + "events", hub.user("bob")) as stream:
        assert stream.status == 200
        assert stream.wait_for(": connected", 30), stream.text
        deadline = time.monotonic() + 60
        while not stream.wait_for(bobs_run(), 10):  # until the watcher has its first look
            # (a run made before it is no change to it): then bob's own changes arrive
            assert time.monotonic() < deadline, stream.text
        # alice acts: a run, an endpoint, a schedule
        pipeline = theirs.pipeline_id("walk-events-alice", "walk_events_alice.ipynb")
        her_run = theirs.create_run(pipeline_id=pipeline, pipeline_version="v",
                                    notebook_path="walk_events_alice.ipynb", parameters={},
                                    options={}, steps=["s"])
        theirs.finish_run(her_run, "succeeded")
        theirs.ensure_endpoint("walkevents-alice")
        theirs.add_endpoint_revision("walkevents-alice", routes=[
            {"model": MODEL, "version": 1, "weight": 100}], action="deploy", actor="alice")
        her_schedule = theirs.add_schedule(
            name="walkevents-alice", target="notebook", notebook_path=NOTEBOOK,
            cron="0 5 * * *", timezone="UTC")
        second = bobs_run()  # after alice's: hers would have come by now
        assert stream.wait_for(second, 30), stream.text
        time.sleep(2.5)  # one more look of the watcher
        text = stream.text
    secrets = [*alice.names.secrets(), her_run, "walkevents-alice", her_schedule.id]
    leaked = [s for s in secrets if s in text]
    assert not leaked, (leaked, text[-3000:])
    events = list(events_of(text))
    assert {kind for kind, _ in events} >= {"run"}, text
    for kind, data in events:
        owner = json.loads(data).get("owner")
        assert owner in (None, "bob"), (kind, data)
    theirs.delete_schedule(her_schedule.id, datetime.now(UTC))
    theirs.add_endpoint_revision("walkevents-alice", routes=[], action="undeploy",
                                 actor="alice")
    alice.unchanged()


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_answers(hub, alice, bob_project, tmp_path_factory) -> dict[tuple[str, ...], Any]:
    """Every CLI command of ``CLI_CASES`` run as bob with alice's names and with made-up ones
    (several processes at once: each mostly waits on the services)."""
    theirs = alice.names
    jobs = []
    for param in CLI_CASES:
        (command,) = param.values
        for names in (theirs, theirs.made_up()):
            jobs.append((command, names, tmp_path_factory.mktemp("bob-cli")))
    with ThreadPoolExecutor(4) as pool:
        done = pool.map(lambda job: cli(hub, "bob", job[2], *cli_argv(job[0], job[1], job[2])),
                        jobs)
        procs = list(done)
    answers: dict[tuple[str, ...], Any] = {}
    for (command, names, _), proc in zip(jobs, procs):
        answers.setdefault(command, []).append((names, proc))
    return answers


@pytest.mark.parametrize("command", CLI_CASES)
def test_every_cli_command_tells_bob_alices_things_do_not_exist(alice, cli_answers, command):
    (theirs, got), (fake, missing) = cli_answers[command]
    where = (got.args[1:], got.returncode, got.stdout[-1000:], got.stderr[-1500:])
    if command in CLI_CREATES:  # bob's own thing of alice's name, like of a made-up one
        assert (got.returncode, missing.returncode) == (0, 0), (where, missing.stderr)
        alice.unchanged()
        return
    assert got.returncode == 2, where  # not found: bad input
    assert got.stderr.splitlines()[-1].startswith("error: ") and not got.stdout, where
    assert (got.returncode, got.stdout, _timeless(got.stderr)) == (
        missing.returncode, as_alices(missing.stdout, theirs, fake),
        _timeless(as_alices(missing.stderr, theirs, fake))), (where, missing.stderr[-1500:])
    alice.unchanged()


def _timeless(text: str) -> str:
    """``text`` without the elapsed times of progress bars."""
    return re.sub(r"\b\d+:\d\d:\d\d\b", "H:MM:SS", text)


# -- the shared serve service ------------------------------------------------------------------


@pytest.mark.parametrize(("verb", "template", "admin"), SERVE_CASES)
def test_every_serve_route_answers_bob_as_if_alices_endpoint_did_not_exist(hub, alice, verb,
                                                                           template, admin):
    token = hub.user("bob")
    theirs, fake = alice.names, alice.names.made_up()
    nobody = f"nobody-{fake.endpoint.rsplit('-', 1)[1]}"

    def answer(owner: str, names: Names) -> Answer:
        path = template.format(m=names.endpoint)
        return call_serve(hub, owner, verb, path, token, serve_body(verb, template, names))

    path = template.format(m=theirs.endpoint)
    if verb == "GET":  # the names are right: alice reads her endpoint with her hub token
        hers = call_serve(hub, "alice", verb, path, hub.user("alice"), None)
        assert hers.status == 200 and theirs.endpoint in hers.text, (path, hers)
    if admin:  # an admin route, reached: without a token it asks for one
        anonymous = call_serve(hub, "alice", verb, path, None, serve_body(verb, template, theirs))
        assert anonymous.status == 401, (path, anonymous)
    # on alice's path: what a missing endpoint, or a user who never deployed, gets
    got = answer("alice", theirs)
    missing = answer("alice", fake) if "{m}" in template else answer(nobody, theirs)
    assert got.status == 404, (verb, template, got)
    assert got == Answer(missing.status, as_alices(missing.text, theirs, fake)), (
        verb, template, got, missing)
    # on bob's own path, naming alice's endpoint and model: what made-up names get
    got, missing = answer("bob", theirs), answer("bob", fake)
    assert got == Answer(missing.status, as_alices(missing.text, theirs, fake)), (
        verb, template, got, missing)
    if (verb, template) in SERVE_LISTINGS:  # bob's own endpoints only
        assert got.status == 200 and not [s for s in theirs.secrets() if s in got.text], got
    else:  # names alice's endpoint or model: nothing done
        assert got.status >= 400, (verb, template, got)
    alice.unchanged()
    served = alice.predict(hub)
    assert served.status_code == 200 and served.json() == {"predictions": [0, 1]}, served.text
    assert served.headers["X-Model-Version"] == f"{MODEL}@1"
