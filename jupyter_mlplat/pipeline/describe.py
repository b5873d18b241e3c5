"""A notebook as a pipeline, before anything runs: steps, data edges, parameters, and which
steps a run now would take from the cache (the sidebar's Pipeline view, ``GET pipelines``).

"Would be cached" follows the executor's own rule: a step's version covers the content hashes
of its inputs, which are known before a run only when every upstream step is itself cached.
So a step is predicted cached when its upstream steps are, its version already succeeded and
its outputs are still in the artifact store; a step below one that will run has no version yet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..config import MLPlat
from ..errors import InvalidSpecError
from ..schemas import (
    DescribePipeline,
    ParameterInfo,
    PipelineEdgeInfo,
    PipelineErrorInfo,
    PipelineStepInfo,
)
from .spec import PipelineSpec

#: Notebook errors that point at a cell start ``cell <index> ("<first line>")``.
_CELL_ERROR = re.compile(r"^cell (\d+) \(")


def describe_pipeline(path: str | Path, *, config: MLPlat, store: Any, artifacts: Any,
                      display_path: str | None = None,
                      parameters: dict[str, Any] | None = None) -> DescribePipeline:
    """Parse a notebook and say which of its steps a run now would take from the cache.

    Parameters
    ----------
    path : str or Path
        The notebook file (already checked to be one the caller may read).
    config : MLPlat
        Settings (the default kernel takes part in step versions).
    store, artifacts
        The owner's ``Store`` and ``ArtifactStore``: nothing is written to either.
    display_path : str, optional
        How the notebook is named in the answer (default: ``path``).
    parameters : dict, optional
        Parameter values a run would get (default: the notebook's defaults).

    Returns
    -------
    DescribePipeline
        Invalid marks or code are not raised: the answer carries them in ``errors`` (with the
        cell index when the message names one) and has no steps.

    Raises
    ------
    NotFoundError
        When no file exists at ``path``.
    InvalidSpecError
        When ``parameters`` do not fit the notebook's parameters.
    """
    from .notebook import load_notebook, parse_notebook

    shown = display_path if display_path is not None else str(path)
    name = Path(path).stem
    nb = load_notebook(path)  # NotFoundError / not a notebook at all: raised
    try:
        spec = parse_notebook(nb, path=str(Path(path).resolve()), name=name)
    except InvalidSpecError as exc:
        return DescribePipeline(notebook=shown, name=name,
                                errors=[_error_info(str(exc), nb)])
    return DescribePipeline(
        notebook=shown, name=spec.name,
        steps=_steps(spec, config, store, artifacts, parameters or {}),
        edges=_edges(spec),
        parameters=[ParameterInfo(name=p.name, source=p.source,
                                  default=p.default if p.literal and _jsonable(p.default)
                                  else None, type_name=p.type_name)
                    for p in spec.parameters],
    )


def _error_info(message: str, nb: dict[str, Any]) -> PipelineErrorInfo:
    match = _CELL_ERROR.match(message)
    if match is None:
        return PipelineErrorInfo(message=message)
    index = int(match.group(1))
    cells = nb.get("cells") or []
    cell_id = cells[index].get("id") if 0 <= index < len(cells) else None
    return PipelineErrorInfo(message=message, cell_index=index,
                             cell_id=cell_id if isinstance(cell_id, str) else None)


def _steps(spec: PipelineSpec, config: MLPlat, store: Any, artifacts: Any,
           parameters: dict[str, Any]) -> list[PipelineStepInfo]:
    from .executor import PipelineExecutor, StepState
    from .parameters import resolve_parameters

    params = resolve_parameters(spec, dict(parameters))
    # The executor computes versions exactly as a run would; it starts no cluster for that.
    executor = PipelineExecutor(config, store=store, artifacts=artifacts, cluster=_NoCluster())
    states = {step.name: StepState(step.name) for step in spec.steps}
    out = []
    for step in spec.steps:  # in run order: upstream steps come first
        st = states[step.name]
        known = all(states[u].cached for u in step.upstream)
        row = None
        if known:
            inputs = {var: states[producer].outputs.get(var)
                      for var, producer in step.inputs.items()}
            if all(ref is not None for ref in inputs.values()):
                st.version = executor._version(spec, step, params, states, inputs)
                row = store.find_cached(st.version) if step.cache else None
        if row is not None:
            outputs = store.step_io(row.id, "out")
            if all(name in outputs for name in step.outputs) and all(
                    artifacts.exists(ref["uri"]) for ref in outputs.values()):
                st.cached, st.outputs = True, outputs
            else:
                row = None
        out.append(PipelineStepInfo(
            name=step.name, version=st.version, after=list(step.after),
            upstream=list(step.upstream), inputs=dict(step.inputs),
            outputs=list(step.outputs), params=list(step.params), gpus=step.gpu,
            cache=step.cache, cell_indexes=[c.index for c in step.cells],
            cell_ids=[c.id for c in step.cells], cached=st.cached,
            cached_from_run=row.run_id if row is not None else None,
        ))
    return out


def _edges(spec: PipelineSpec) -> list[PipelineEdgeInfo]:
    edges: dict[tuple[str, str], PipelineEdgeInfo] = {}
    for step in spec.steps:
        for var, producer in sorted(step.inputs.items()):
            edge = edges.setdefault((producer, step.name),
                                    PipelineEdgeInfo(source=producer, target=step.name))
            edge.names.append(var)
        for up in step.after:
            edge = edges.setdefault((up, step.name), PipelineEdgeInfo(source=up, target=step.name))
            edge.explicit = True
        for up in step.upstream:  # any other ordering the parser derived
            edges.setdefault((up, step.name), PipelineEdgeInfo(source=up, target=step.name))
    return list(edges.values())


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, tuple)


class _NoCluster:
    """Stands in for the cluster of an executor that only computes versions."""

    def close(self) -> None:
        """Nothing to close."""
