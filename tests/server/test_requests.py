"""Client mistakes are 400s that say what was wrong; unknown things are 404s; paths stay inside
the server root; ``pipelines`` describes a notebook without running it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.server.paths import resolve_in_root
from tests.pipeline.nbbuild import code, notebook, write

from .conftest import TWO_STEPS, EventStream, step

# -- resolve_in_root, directly ---------------------------------------------------------------


def test_resolve_in_root_accepts_paths_inside(tmp_path: Path):
    (tmp_path / "a").mkdir()
    assert resolve_in_root(tmp_path, "a/nb.ipynb") == (tmp_path / "a" / "nb.ipynb").resolve()
    assert resolve_in_root(tmp_path, "./a/./nb.ipynb") == (tmp_path / "a/nb.ipynb").resolve()
    inner = tmp_path / "a" / "link"
    inner.symlink_to(tmp_path / "a")  # a symlink that stays inside is fine
    assert resolve_in_root(tmp_path, "a/link/nb.ipynb") == (tmp_path / "a/nb.ipynb").resolve()


@pytest.mark.parametrize(("path", "says"), [
    ("../outside.ipynb", "'..' is not allowed"),
    ("a/../../outside.ipynb", "'..' is not allowed"),
    ("/etc/passwd", "absolute"),
    ("C:/Windows/x.ipynb", "absolute"),
    ("", "empty"),
    ("   ", "empty"),
    ("a\x00b.ipynb", "NUL"),
])
def test_resolve_in_root_refuses(tmp_path: Path, path: str, says: str):
    with pytest.raises(InvalidSpecError, match=says):
        resolve_in_root(tmp_path, path)


def test_resolve_in_root_refuses_symlinks_out(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "out").symlink_to(outside)
    (root / "nb.ipynb").symlink_to(outside / "secret.ipynb")

    for path in ("out/secret.ipynb", "nb.ipynb"):
        with pytest.raises(InvalidSpecError, match="outside the server root"):
            resolve_in_root(root, path)


# -- through the API ---------------------------------------------------------------------------


@pytest.fixture
def outside_notebook(jp_root_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid notebook outside the server root, linked from inside it two ways."""
    outside = tmp_path_factory.mktemp("outside")
    path = write(outside, "secret", notebook(step("leak", "print('secret')")))
    (jp_root_dir / "linked.ipynb").symlink_to(path)
    (jp_root_dir / "outdir").symlink_to(outside)
    return path


@pytest.mark.parametrize("path", ["../secret.ipynb", "{abs}", "linked.ipynb",
                                  "outdir/secret.ipynb"])
async def test_paths_out_of_the_root_are_refused(api, outside_notebook, path):
    path = path.format(abs=str(outside_notebook))

    error = await api.error("GET", "pipelines", params={"notebook": path}, expect=400)
    assert "leak" not in json.dumps(error)  # nothing of the file was read
    error = await api.error("POST", "runs", body={"notebook": path}, expect=400)
    assert error["error"] == "InvalidSpecError"
    assert (await api.ok("GET", "runs"))["runs"] == []


async def test_missing_notebook_is_404_and_a_directory_400(api, jp_root_dir: Path):
    (jp_root_dir / "folder.ipynb").mkdir()

    error = await api.error("GET", "pipelines", params={"notebook": "nope.ipynb"}, expect=404)
    assert "nope.ipynb" in error["message"]
    await api.error("POST", "runs", body={"notebook": "nope.ipynb"}, expect=404)
    error = await api.error("GET", "pipelines", params={"notebook": "folder.ipynb"}, expect=400)
    assert "directory" in error["message"]


async def test_bad_bodies_and_queries_are_400s_that_say_why(api, make_notebook):
    nb = make_notebook("pipe", *TWO_STEPS)

    error = await api.error("POST", "runs", raw=b"{not json", expect=400)
    assert "JSON" in error["message"]
    error = await api.error("POST", "runs", body={"notebook": nb, "colour": "red"}, expect=400)
    assert "colour" in error["message"] and error["detail"][0]["type"] == "extra_forbidden"
    error = await api.error("POST", "runs", body={"notebook": nb, "parameters": [1]},
                            expect=400)
    assert "parameters" in error["message"]
    error = await api.error("POST", "runs", body=["a", "list"], expect=400)
    assert "dictionary" in error["message"] or "object" in error["message"]
    error = await api.error("POST", "runs", body={"notebook": nb,
                                                  "selection": {"only": "nope"}}, expect=400)
    assert "unknown step 'nope'" in error["message"] and "make, total" in error["message"]
    error = await api.error("POST", "runs", body={"notebook": nb, "parameters": {"x": 1}},
                            expect=400)
    assert "x" in error["message"]
    error = await api.error("POST", "runs", body={"notebook": nb, "dask_address": "tcp://x:1"},
                            expect=400)
    assert "c.MLPlat.dask_address" in error["message"]
    error = await api.error("GET", "runs", params={"limit": "lots"}, expect=400)
    assert "limit" in error["message"]
    error = await api.error("GET", "runs", params={"colour": "red"}, expect=400)
    assert "colour" in error["message"]
    error = await api.error("GET", "runs", params={"status": "sleeping"}, expect=400)
    assert "status" in error["message"]
    error = await api.error("GET", "compare", params={"runs": "onlyone"}, expect=400)
    assert "at least two runs" in error["message"]
    error = await api.error("POST", "endpoints", body={"model": "m", "canary": 150}, expect=400)
    assert "canary" in error["message"]
    error = await api.error("PUT", "models", "churn", "aliases", "production",
                            body={"version": 0}, expect=400)
    assert "version" in error["message"]
    error = await api.error("POST", "runs", "abc", "rerun", body={"step": "x", "mode": "all"},
                            expect=400)
    assert "mode" in error["message"]


async def test_unknown_things_are_404s(api):
    for parts in (("runs", "feedbeef"), ("runs", "feedbeef", "metrics"),
                  ("runs", "feedbeef", "steps", "a", "log"), ("models", "nope"),
                  ("models", "nope", "versions", "3"), ("endpoints", "nope")):
        error = await api.error("GET", *parts, expect=404)
        assert error["error"] == "NotFoundError"
    for parts in (("runs", "feedbeef", "cancel"), ("runs", "feedbeef", "resume"),
                  ("endpoints", "nope", "rollback"), ("endpoints", "nope", "try")):
        await api.error("POST", *parts, expect=404)
    await api.error("DELETE", "endpoints", "nope", expect=404)


async def test_pipeline_described_with_edges_parameters_and_nothing_cached(api, make_notebook):
    nb = make_notebook("diamond", code("n = 3", tags=["parameters"]),
                       step("load", "rows = list(range(n))"),
                       step("left", "a = [r * 2 for r in rows]"),
                       step("right", "b = [r + 1 for r in rows]"),
                       step("join", "out = sum(a) + sum(b)", after=["load"]),
                       folder="sub")

    pipeline = await api.ok("GET", "pipelines", params={"notebook": nb})

    assert pipeline["notebook"] == "sub/diamond.ipynb" and pipeline["name"] == "diamond"
    assert pipeline["errors"] == []
    steps = {s["name"]: s for s in pipeline["steps"]}
    assert list(steps) == ["load", "left", "right", "join"]
    assert steps["join"]["inputs"] == {"a": "left", "b": "right"}
    assert steps["load"]["params"] == ["n"] and steps["load"]["cell_indexes"] == [1]
    assert not any(s["cached"] for s in steps.values())
    assert steps["load"]["version"]  # no upstream: its version is known before any run
    assert steps["join"]["version"] is None  # its inputs do not exist yet
    edges = {(e["source"], e["target"]): e for e in pipeline["edges"]}
    assert edges[("load", "left")]["names"] == ["rows"]
    assert edges[("left", "join")]["names"] == ["a"]
    assert edges[("load", "join")] == {"source": "load", "target": "join", "names": [],
                                       "explicit": True}
    assert pipeline["parameters"] == [{"name": "n", "source": "3", "default": 3,
                                       "type_name": "int"}]


async def test_pipeline_errors_point_at_the_cell(api, make_notebook, jp_root_dir: Path):
    nb = make_notebook("broken", step("a", "x = 1"), step("b", "y = x + undefined_name"))
    nb_json = json.loads((jp_root_dir / nb).read_text())
    nb_json["cells"][1]["id"] = "cell-b"
    (jp_root_dir / nb).write_text(json.dumps(nb_json))

    pipeline = await api.ok("GET", "pipelines", params={"notebook": nb})

    assert pipeline["steps"] == []
    [error] = pipeline["errors"]
    assert error["cell_index"] == 1 and error["cell_id"] == "cell-b"
    assert "undefined_name" in error["message"]
    tags = make_notebook("tags", code("x = 1", tags=["step:"]))
    pipeline = await api.ok("GET", "pipelines", params={"notebook": tags})
    assert pipeline["errors"][0]["cell_index"] == 0


async def test_owner_is_the_platform_owner_not_jupyters_anonymous_name(api, monkeypatch):
    from jupyter_mlplat.config import current_owner

    assert (await api.ok("GET", "version"))["owner"] == current_owner() == (
        os.environ.get("JUPYTERHUB_USER") or __import__("getpass").getuser())


async def test_another_owners_runs_are_not_found(api):
    from jupyter_mlplat.config import MLPlat
    from jupyter_mlplat.store.sql import Store

    other = Store(MLPlat().store_url, "someone-else")
    try:
        pid = other.pipeline_id("theirs", "/home/them/theirs.ipynb")
        run_id = other.create_run(pipeline_id=pid, pipeline_version="v",
                                  notebook_path="/home/them/theirs.ipynb", parameters={},
                                  options={}, steps=["a"])
    finally:
        other.close()

    await api.error("GET", "runs", run_id, expect=404)
    await api.error("POST", "runs", run_id, "cancel", expect=404)
    assert (await api.ok("GET", "runs"))["runs"] == []


# -- jupyter-server's own query arguments, secrets in logs --------------------------------------


async def test_token_in_the_query_logs_in_and_is_never_echoed_or_logged(
        api, make_notebook, jp_serverapp, jp_http_port, jp_base_url, caplog):
    """``?token=`` is how jupyter-server links log in; our query models must not see it."""
    token = jp_serverapp.identity_provider.token
    nb = make_notebook("pipe", *TWO_STEPS)
    anonymous = {"Authorization": ""}
    caplog.set_level(logging.DEBUG)

    runs = await api("GET", "runs", params={"token": token, "_xsrf": "x"}, headers=anonymous)
    assert runs.code == 200 and runs.json == {"runs": []}
    described = await api("GET", "pipelines", params={"notebook": nb, "token": token},
                          headers=anonymous)
    assert described.code == 200, described.body
    compared = await api("GET", "compare", params={"runs": "aa,bb", "token": token},
                         headers=anonymous)
    assert compared.code == 404  # the runs do not exist: the token was not the problem
    refused = await api("GET", "runs", params={"limit": "lots", "token": token},
                        headers=anonymous)
    assert refused.code == 400 and "limit" in refused.json["message"]
    assert "lots" not in refused.text  # refused values are not echoed either
    async with EventStream(jp_http_port, f"{jp_base_url}mlplat/api/events?token={token}",
                           {}) as stream:
        assert stream.status == 200

    for answer in (runs, described, compared, refused):
        assert token not in answer.text
    assert token not in caplog.text
    assert "[secret]" in caplog.text  # the requests were logged, scrubbed


async def test_nan_and_infinity_are_not_json(api, make_notebook):
    nb = make_notebook("pipe", code("lr = 0.1", tags=["parameters"]), *TWO_STEPS)
    for constant in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"notebook": "{nb}", "parameters": {{"lr": {constant}}}}}'.encode()
        error = await api.error("POST", "runs", raw=raw, expect=400)
        assert constant.lstrip("-") in error["message"] and "finite number" in error["message"]
    assert (await api.ok("GET", "runs"))["runs"] == []


async def test_nul_characters_are_400s_wherever_they_are(api):
    for parts in (("runs", "\x00"), ("runs", "ab\x00", "metrics"), ("models", "m\x00"),
                  ("models", "m", "versions", "\x00"), ("endpoints", "e\x00"),
                  ("runs", "a", "steps", "\x00", "log")):
        error = await api.error("GET", *parts, expect=400)
        assert "NUL" in error["message"], (parts, error)
    error = await api.error("POST", "endpoints", body={"model": "churn\x00"}, expect=400)
    assert "model" in error["message"] and "NUL" in error["message"]
    error = await api.error("PUT", "models", "m", "aliases", "a",
                            body={"version": 1, "reason": "x\x00"}, expect=400)
    assert "reason" in error["message"]
    # data passed through to a model is not refused for it (the endpoint does not exist)
    await api.error("POST", "endpoints", "e", "try", body={"inputs": {"inputs": ["a\x00"]}},
                    expect=404)


# -- runs of notebooks outside the root ---------------------------------------------------------


async def test_resume_and_rerun_refuse_a_run_of_a_notebook_outside_the_root(
        api, tmp_path_factory: pytest.TempPathFactory):
    """A run started elsewhere (the CLI) of a notebook outside the root: its kernels would
    work in that notebook's folder."""
    from jupyter_mlplat.config import MLPlat
    from jupyter_mlplat.store.sql import Store

    outside = tmp_path_factory.mktemp("elsewhere")
    path = write(outside, "theirs", notebook(step("a", "x = 1")))
    store = Store(MLPlat().store_url, MLPlat().owner)
    try:
        pid = store.pipeline_id("theirs", str(path))
        run_id = store.create_run(pipeline_id=pid, pipeline_version="v", notebook_path=str(path),
                                  parameters={}, options={}, steps=["a"])
        store.finish_run(run_id, "failed", "stopped")
    finally:
        store.close()

    error = await api.error("POST", "runs", run_id, "resume", expect=400)
    assert "outside this server's root" in error["message"]
    assert f"jupyter mlplat resume {run_id}" in error["message"]
    error = await api.error("POST", "runs", run_id, "rerun", body={"step": "a"}, expect=400)
    assert "outside this server's root" in error["message"]
    assert (await api.ok("GET", "runs", run_id))["status"] == "failed"
