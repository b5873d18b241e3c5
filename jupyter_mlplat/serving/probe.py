"""Trying an endpoint the way a client would: a request body from a model version's stored
sample input, a copyable ``curl`` line, and one real HTTP call to a serve process.

Bodies use the MLflow scoring format that every serve process accepts at
``/endpoints/{name}/invocations``: ``dataframe_split`` for tables, ``inputs`` for arrays and
dicts of columns.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..errors import InvalidSpecError, MLPlatError
from ..schemas import TryEndpointResponse

#: Statuses a serve process answers while it has not loaded a new revision yet.
_NOT_YET = (404, 503)


class ServingUnavailableError(MLPlatError):
    """The serve process cannot be reached (not started, stopped, or the URL is wrong)."""


def sample_body(sample: Any) -> dict[str, Any]:
    """An MLflow scoring body holding ``sample`` (a DataFrame, an array, a tensor, a dict of
    columns or a list of rows).

    Raises
    ------
    InvalidSpecError
        When the version has no sample input (``None``).
    """
    if sample is None:
        raise InvalidSpecError("this model version has no stored sample input; give the "
                               "request's inputs yourself")
    if hasattr(sample, "to_json") and hasattr(sample, "columns"):  # a pandas DataFrame
        split = json.loads(sample.to_json(orient="split", index=False, date_format="iso"))
        return {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}
    if hasattr(sample, "detach"):  # a torch tensor
        sample = sample.detach().cpu().numpy()
    if hasattr(sample, "tolist"):  # numpy arrays, pandas Series
        return {"inputs": sample.tolist()}
    if isinstance(sample, dict):
        return {"inputs": {str(k): _plain(v) for k, v in sample.items()}}
    return {"inputs": _plain(sample)}


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def invocations_url(base_url: str, endpoint: str) -> str:
    """Where a serve process at ``base_url`` takes MLflow scoring bodies for ``endpoint``."""
    return f"{base_url.rstrip('/')}/endpoints/{endpoint}/invocations"


def curl_command(url: str, body: Any, *, needs_token: bool) -> str:
    """A copyable ``curl`` line posting ``body`` to ``url`` (the token read from
    ``$MLPLAT_ENDPOINT_TOKEN`` when the endpoint needs one: it is never written out)."""
    auth = ' -H "Authorization: Bearer $MLPLAT_ENDPOINT_TOKEN"' if needs_token else ""
    return (f"curl -s -X POST {shlex.quote(url)} -H 'Content-Type: application/json'{auth} "
            f"-d {shlex.quote(json.dumps(body, separators=(',', ':')))}")


def call_endpoint(base_url: str, endpoint: str, body: Any, *, token: str | None = None,
                  min_revision: int | None = None, wait: float = 30.0,
                  timeout: float = 30.0) -> TryEndpointResponse:
    """POST ``body`` to ``endpoint`` on the serve process at ``base_url`` and report the answer.

    Parameters
    ----------
    base_url : str
        The serve process (``http://127.0.0.1:8500``).
    endpoint : str
        The endpoint's name.
    body : Any
        An MLflow scoring body (see :func:`sample_body`).
    token : str, optional
        The endpoint's bearer token (not needed for a public endpoint).
    min_revision : int, optional
        Wait until the serve process answers with this endpoint revision or a newer one (a
        deploy is applied within a second, then the version loads and warms up).
    wait : float
        Longest time to wait for the endpoint to be served (``min_revision`` included).
    timeout : float
        Longest time for one request.

    Returns
    -------
    TryEndpointResponse
        Whatever status the endpoint answered (a 400 for input that does not fit is an answer
        too); ``ok`` when it was 2xx.

    Raises
    ------
    ServingUnavailableError
        When the serve process cannot be reached at all.
    """
    url = invocations_url(base_url, endpoint)
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + wait
    while True:
        started = time.perf_counter()
        status, answer, reply_headers = _post(url, data, headers, timeout)
        elapsed = (time.perf_counter() - started) * 1000
        revision = _int(reply_headers.get("X-Endpoint-Revision"))
        stale = (min_revision is not None and status < 400 and revision is not None
                 and revision < min_revision)
        if not (status in _NOT_YET or stale) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return TryEndpointResponse(
        endpoint=endpoint, url=url, status=status, ok=200 <= status < 300,
        model_version=reply_headers.get("X-Model-Version"), revision=revision, request=body,
        response=answer, duration_ms=round(elapsed, 3),
        curl=curl_command(url, body, needs_token=bool(token)),
    )


def _is_loopback(url: str) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(url: str) -> urllib.request.OpenerDirector:
    """No proxy for a serve process on this machine: ``HTTP(S)_PROXY`` would otherwise get
    the request, and the endpoint's bearer token with it (unless ``NO_PROXY`` lists it). A
    remote serving URL keeps the environment's proxy settings."""
    if _is_loopback(url):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _post(url: str, data: bytes, headers: dict[str, str], timeout: float
          ) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            return response.status, _decode(response.read()), dict(response.headers)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, _decode(err.read()), dict(err.headers)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ServingUnavailableError(f"cannot reach the serve process at {url}: {reason}") from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
