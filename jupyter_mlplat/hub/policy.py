"""Which store methods the store service exposes, and how their arguments are checked.

Every public method of ``Store`` is either exposed (``EXPOSED``) or refused with a reason
(``DENIED``); a test keeps the two lists complete, so a new store method stays unreachable
until someone decides. Exposed methods run on a store scoped to the caller, so their queries
see the caller's rows only. On top of that the service checks what a client sends:

- arguments are bound to the method's signature and validated against its type hints;
- ``**fields`` of the methods that write whole rows may name only the row's own columns, never
  ``owner``, ids or what the store numbers itself;
- an id a call names (``run_id``, ``step_run_id``, ``model_version_id``, ...) must be one of the
  caller's rows, else the call is a 404 before it runs (no dangling references into another
  owner's rows, and no way to learn whether an id exists);
- an artifact a call records must be an object of the caller's own part of the artifact store;
- ``actor`` and ``created_by`` must be the caller;
- artifact references, metric points and slice rows must have the shape the store reads
  (:data:`ARG_MODELS`), a method that creates a row gets every column the row needs, and
  free-form values (parameters, specs, reports) must be plain JSON: a client's mistake is a 400,
  never a failure inside the store;
- schedule rows name a notebook relative to the owner's root, a kernel the service allows and
  webhooks the service allows (:class:`~jupyter_mlplat.hub.schedules.SchedulePolicy`): the
  scheduler that fires them runs as a hub service, so a user must not point it at another
  user's files, at any kernel, or at hosts inside the hub's network.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidSpecError

#: Columns no client sets through ``**fields``: identity, ownership and what the store numbers.
ALWAYS_FIXED = frozenset({"id", "owner", "project", "created_at"})


@dataclass(frozen=True)
class Exposed:
    """How one exposed method is called.

    ``fields``: the ORM class whose columns the method's ``**fields`` may set, less ``fixed``
    (and ``extra`` keys the method takes besides columns). ``creates``: the method inserts a
    row from ``**fields``, so every column without a default (and ``extra``) must be given.
    ``process``: the call records the calling process as the run's live owner (``create``,
    ``claim``) or acts only while it is (``finish``); the caller must say which process it is.
    ``idempotent``: calling it twice does what calling it once does, so a client may retry it
    after a lost answer.
    """

    fields: str | None = None
    fixed: frozenset[str] = frozenset()
    extra: frozenset[str] = frozenset()
    creates: bool = False
    process: str | None = None
    idempotent: bool = False


#: Reads (and writes that set a value rather than add one): safe to retry.
_READ = Exposed(idempotent=True)
_SCHEDULE_FIXED = frozenset({"lease_holder", "lease_expires_at", "lease_token", "updated_at",
                             "deleted_at", "next_fire_at", "last_error", "last_slot_at"})


EXPOSED: dict[str, Exposed] = {
    # runs, steps, versions, params and metrics
    "sweep_interrupted": _READ,
    "heartbeat": _READ,
    "pipeline_id": _READ,
    "save_pipeline_version": _READ,
    "pipeline_spec": _READ,
    "save_step_version": _READ,
    "create_run": Exposed(process="create"),
    "claim_run": Exposed(process="claim"),
    "finish_run": Exposed(process="finish"),
    "request_cancel": _READ,
    "resolve_run_id": _READ,
    "run_row": _READ,
    "runs": _READ,
    "pipeline_names": _READ,
    "step_runs": _READ,
    "step_run": _READ,
    "run_of_step_run": _READ,
    "new_attempt": Exposed(),
    "update_step_run": Exposed(fields="StepRun", fixed=frozenset({"run_id", "step_name"}),
                               idempotent=True),
    "find_cached": _READ,
    "latest_success": _READ,
    "record_io": Exposed(),
    "step_io": _READ,
    "log_params": Exposed(),
    "log_metrics": Exposed(),
    "params": _READ,
    "metrics": _READ,
    # registry and validation
    "ensure_model": _READ,
    "add_model_version": Exposed(fields="ModelVersion",
                                 fixed=frozenset({"model_id", "version", "artifact_id"}),
                                 extra=frozenset({"artifact"}), creates=True),
    "models": _READ,
    "model_versions": _READ,
    "model_version": _READ,
    "model_version_by_id": _READ,
    "model_name": _READ,
    "run_model_versions": _READ,
    "artifact_ref": _READ,
    "step_inputs": _READ,
    "step_version_code": _READ,
    "add_alias_event": Exposed(),
    "alias_target": _READ,
    "aliases": _READ,
    "alias_history": _READ,
    "add_policy": Exposed(),
    "policy": _READ,
    "add_validation": Exposed(),
    "validations": _READ,
    "add_override": Exposed(),
    "overrides": _READ,
    "add_slices": Exposed(),
    "slice_metrics": _READ,
    "add_eval_set": Exposed(),
    "eval_sets": _READ,
    "eval_set": _READ,
    # serving
    "endpoint_row": _READ,
    "ensure_endpoint": _READ,
    "set_endpoint_token": _READ,
    "add_endpoint_revision": Exposed(fields="EndpointRevision",
                                     fixed=frozenset({"endpoint_id", "revision"}), creates=True),
    "endpoint_revisions": _READ,
    "endpoints": _READ,
    "serving_generation": _READ,
    "serving_states": _READ,
    # schedules of the caller (the scheduler loop itself runs as its own hub service); their
    # rows are checked by SchedulePolicy
    "add_schedule": Exposed(fields="Schedule", fixed=_SCHEDULE_FIXED, creates=True),
    "schedule_row": _READ,
    "schedules": _READ,
    "match_schedules": _READ,
    "update_schedule": Exposed(fields="Schedule", fixed=_SCHEDULE_FIXED),
    "delete_schedule": _READ,
    "add_manual_firing": Exposed(),
    "firing_row": _READ,
    "firings": _READ,
    "latest_firings": _READ,
    "run_statuses": _READ,
    # projects and sharing: a project's members read what is shared with it, never change it
    "create_project": Exposed(),
    "projects": _READ,
    "project": _READ,
    "add_project_member": _READ,
    "remove_project_member": Exposed(),
    "delete_project": Exposed(),
    "share": _READ,
    "shared_with_me": _READ,
    "shares": _READ,
    "shared_model": _READ,
    "shared_endpoint": _READ,
    "shared_pipeline": _READ,
    "shared_schedule": _READ,
}

_LOOP_ONLY = ("the scheduler loop's query (it spans owners or fences leases); only a scheduler "
              "process with its own database access calls it")
DENIED: dict[str, str] = {
    "session": "a database transaction cannot cross HTTP",
    "close": "closing is local to the client",
    "count": "takes a table class; not part of the remote interface",
    **{name: _LOOP_ONLY for name in (
        "due_schedules", "acquire_lease", "renew_leases", "release_leases", "claim_slot",
        "set_next_fire", "pending_firings", "claim_pending", "beat_firings", "still_fenced",
        "update_firing", "add_notification", "stale_firings", "interrupt_firing",
        "schedule_any_owner", "firing_row_any_owner",
    )},
    "shared_object_owner": "the service asks it itself before it hands out another owner's "
                           "object (api/artifacts/object)",
}

#: Arguments (and ``**fields`` keys) that name one row: checked to be the caller's.
ID_ARGS: dict[str, tuple[str, str]] = {
    "run_id": ("Run", "run"),
    "step_run_id": ("StepRun", "step run"),
    "cached_from": ("StepRun", "step run"),
    "model_version_id": ("ModelVersion", "model version"),
    "pipeline_id": ("Pipeline", "pipeline"),
    "model_id": ("Model", "model"),
    "artifact_id": ("Artifact", "artifact"),
    "schedule_id": ("Schedule", "schedule"),
    "firing_id": ("ScheduleFiring", "firing"),
}

#: Arguments that name who did something: must be the caller.
ACTOR_ARGS = ("actor", "created_by", "requested_by")

#: ``**fields`` keys holding an artifact URI the caller must own.
URI_FIELDS = ("executed_notebook", "log_uri")


# -- the shapes of structured arguments ---------------------------------------------------------


class ArtifactRefArg(BaseModel):
    """An artifact reference as the store records it (``ArtifactRef.to_dict()``)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    uri: str = Field(min_length=1, max_length=4096)
    format: str = Field(min_length=1, max_length=64)
    type_name: str = Field(max_length=512)
    size: int = Field(default=0, ge=0)
    trusted_only: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)


class MetricPointArg(BaseModel):
    """One metric value (what ``mlp.log_metric`` records)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=255)
    value: float
    step: int | None = None
    timestamp: float | None = None


class SliceRowArg(BaseModel):
    """One slice's score (what ``mlp.log_slices`` records)."""

    model_config = ConfigDict(extra="ignore")

    slice: str | int | float | bool
    value: float | None = None
    count: int = Field(ge=0)


_REF = ArtifactRefArg
#: (method, argument or ``**fields`` key) -> the type its value must have; checked values are
#: passed on as plain dicts of exactly these keys.
ARG_MODELS: dict[tuple[str, str], Any] = {
    ("record_io", "refs"): dict[str, _REF],
    ("log_metrics", "points"): list[MetricPointArg],
    ("add_slices", "rows"): list[SliceRowArg],
    ("add_eval_set", "x"): _REF,
    ("add_eval_set", "y"): _REF,
    ("add_eval_set", "slices"): _REF | None,
    ("add_model_version", "artifact"): _REF,
    ("add_model_version", "sample_input"): _REF | None,
    ("add_model_version", "sample_output"): _REF | None,
}


def check_json(where: str, value: Any) -> None:
    """Refuse ``value`` unless it is plain JSON (what a JSON column stores as it was sent).

    Raises
    ------
    InvalidSpecError
        A datetime, bytes, a store row or a key JSON cannot hold inside ``value``.
    """
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidSpecError(f"{where} must be plain JSON (numbers, strings, booleans, null, "
                               f"arrays, objects); {exc}") from None


def free_form(hint: Any) -> bool:
    """Whether a parameter of type ``hint`` holds free-form data (``Any`` inside)."""
    if hint is Any:
        return True
    return any(free_form(arg) for arg in typing.get_args(hint))


def public_methods(cls: type) -> set[str]:
    """The public methods of ``cls`` (the store's interface)."""
    return {name for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("_") and inspect.isfunction(member)}


@dataclass
class MethodSignature:
    """A store method's parameters and the validators of their values."""

    name: str
    signature: inspect.Signature
    adapters: dict[str, Any] = field(default_factory=dict)
    var_keyword: str | None = None
    free_form: set[str] = field(default_factory=set)  # parameters typed with Any inside


def _as_list(hint: Any) -> Any:
    """``Iterable[X]`` / ``Collection[X]`` / ``Sequence[X]`` -> ``list[X]`` (a JSON array)."""
    origin = typing.get_origin(hint)
    if origin in (collections.abc.Iterable, collections.abc.Collection,
                  collections.abc.Sequence):
        (item,) = typing.get_args(hint) or (Any,)
        return list[item]  # type: ignore[valid-type]
    return hint


@cache
def method_signature(store_cls: type, name: str) -> MethodSignature:
    """Parameters of ``store_cls.name`` with a pydantic validator per typed parameter."""
    from pydantic import TypeAdapter

    fn = getattr(store_cls, name)
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an unresolvable hint: validate that method loosely
        hints = {}
    out = MethodSignature(name, sig)
    for pname, param in sig.parameters.items():
        if pname == "self":
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            out.var_keyword = pname
            continue
        hint = hints.get(pname, Any)
        if hint is not Any:
            out.adapters[pname] = TypeAdapter(_as_list(hint))
        if pname in hints and free_form(hint):
            out.free_form.add(pname)
    return out


@cache
def arg_adapter(method: str, key: str) -> Any:
    """The validator of ``ARG_MODELS[(method, key)]``, or None."""
    from pydantic import TypeAdapter

    model = ARG_MODELS.get((method, key))
    return None if model is None else TypeAdapter(model)


@cache
def field_adapters(table: str) -> dict[str, Any]:
    """Column name -> pydantic validator of its Python type, for an ORM class's columns."""
    from pydantic import TypeAdapter
    from sqlalchemy.orm import Mapped

    from ..store import orm

    cls = getattr(orm, table)
    hints = typing.get_type_hints(cls)
    out = {}
    for column in cls.__table__.columns:
        hint = hints.get(column.key, Any)
        if typing.get_origin(hint) is Mapped:
            (hint,) = typing.get_args(hint)
        out[column.key] = TypeAdapter(hint)
    return out


@cache
def json_columns(table: str) -> frozenset[str]:
    """Columns of an ORM class that hold free-form JSON (typed with ``Any`` inside)."""
    from sqlalchemy.orm import Mapped

    from ..store import orm

    cls = getattr(orm, table)
    hints = typing.get_type_hints(cls)
    found = set()
    for column in cls.__table__.columns:
        hint = hints.get(column.key, Any)
        if typing.get_origin(hint) is Mapped:
            (hint,) = typing.get_args(hint)
        if free_form(hint):
            found.add(column.key)
    return frozenset(found)


@cache
def required_fields(table: str) -> frozenset[str]:
    """Columns of an ORM class a new row must be given: not nullable and without a default."""
    from ..store import orm

    cls = getattr(orm, table)
    return frozenset(c.key for c in cls.__table__.columns
                     if not c.nullable and c.default is None and c.server_default is None
                     and not c.primary_key)
