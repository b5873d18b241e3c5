"""Tracking records -> store rows: one code path for steps and for plain notebooks.

A step kernel appends records (one JSON line each) to its tracking file and the executor applies
them when the step ends; outside a step each call is applied at once to the notebook's run
(:mod:`jupyter_mlplat.tracking.session`). Either way the rows come from :func:`apply_records`.

Record kinds: ``param``, ``metric``, ``slices``, ``eval``, ``model``, ``policy``, ``alias``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import orm
    from ..store.artifacts import ArtifactStore
    from ..store.sql import Store

KINDS = ("param", "metric", "slices", "eval", "model", "policy", "alias")


@dataclass
class Lineage:
    """Where records come from, stamped on the model versions they register."""

    notebook_path: str | None = None
    step_name: str | None = None
    step_version: str | None = None
    cell_ids: list[str] = field(default_factory=list)
    input_artifacts: dict[str, str] = field(default_factory=dict)


def read_file(path: str) -> list[dict[str, Any]]:
    """The records of a tracking file; a line cut short by a killed kernel is skipped."""
    records: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("kind") in KINDS:
            records.append(record)
    return records


def apply_records(store: Store, artifacts: ArtifactStore, records: list[dict[str, Any]], *,
                  run_id: str, step_run_id: int | None, lineage: Lineage | None = None,
                  actor: str | None = None) -> list[tuple[str, orm.ModelVersion]]:
    """Write ``records`` to the store for ``run_id`` / ``step_run_id``.

    Returns
    -------
    list of (model name, ModelVersion)
        The model versions the records registered.
    """
    from .registry import ModelRegistry

    lineage = lineage or Lineage()
    registry = ModelRegistry(store, artifacts, actor=actor)
    by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for record in records:
        by_kind[record["kind"]].append(record)
    # Plain rows first; then what can be refused (an alias naming a missing version) before the
    # model versions, so a refused record never leaves a version registered by a failing step.
    # (an empty batch is not sent: through the store service each call is a round trip)
    params = {r["name"]: r["value"] for r in by_kind["param"]}  # the last value of a name wins
    if params:
        store.log_params(run_id, step_run_id, params)
    if by_kind["metric"]:
        store.log_metrics(run_id, step_run_id, by_kind["metric"])
    for record in by_kind["slices"]:
        store.add_slices(run_id, step_run_id, metric=record["metric"], by=record["by"],
                         rows=record["rows"])
    for record in by_kind["eval"]:
        store.add_eval_set(run_id, step_run_id, x=record["x"], y=record["y"],
                           slices=record.get("slices"), slices_name=record.get("slices_name"),
                           count=int(record.get("count", 0)), model=record.get("model"))
    for record in by_kind["policy"]:
        registry.set_policy(record["model"], record["policy"], source=record.get("source", "step"))
    for record in by_kind["alias"]:
        registry.set_alias(record["model"], record["alias"], record.get("version"),
                           reason=record.get("reason"))
    registered: list[tuple[str, orm.ModelVersion]] = []
    for record in by_kind["model"]:
        mv = registry.register(
            record["name"], record["saved"], run_id=run_id, step_run_id=step_run_id,
            step_name=lineage.step_name, step_version=lineage.step_version,
            notebook_path=lineage.notebook_path,
            cell_ids=record.get("cell_ids") or lineage.cell_ids,
            input_artifacts=lineage.input_artifacts,
        )
        registered.append((record["name"], mv))
    return registered
