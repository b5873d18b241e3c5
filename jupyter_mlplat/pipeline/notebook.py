"""Notebook cells -> ``PipelineSpec``: loading, marks, sections and steps.

Pure functions on the notebook's JSON, standard library only (no nbformat, no IPython), so the
nothing-changed rerun stays fast.

Marks
    ``cell.metadata["mlplat"]`` (``step``, ``after``, ``inputs``, ``outputs``, ``role`` and the
    options of ``spec.STEP_OPTIONS``) or tags: Kale's ``step:<name>`` (``block:<name>`` as an
    alias; an empty ``block:``, which Kale's extension may leave behind, is ignored as Kale does),
    ``prev:<name>``, ``imports``, ``functions``, ``pipeline-parameters``, ``pipeline-metrics``,
    ``skip``, ``cache:enabled|disabled``, ``limit:nvidia.com/gpu:<n>``, and papermill's
    ``parameters``. Other tags that look like ours (``step``, ``block``, ``prev``, ``limit``,
    ``cache``, ``pipeline-`` prefixes) but are ill-formed are errors; the rest are not ours and
    are ignored.

Sections
    A step spans its marked cell and the unmarked code cells after it, up to the next marked
    cell. A ``parameters``, ``imports``, ``functions`` or ``metrics`` cell ends the open step; a
    ``skip`` cell is dropped and does not end it (as in Kale, so a step may hold a skipped cell).
    Unmarked cells before the first step mark form the step ``start``; an unmarked cell after a
    section cell that ended a step belongs nowhere and is an error. A notebook without step marks
    is one step named ``main`` holding every code cell that is not a section. Marking a step name
    again on a later cell (Kale's way to extend a step) adds that cell and the unmarked ones after
    it to the earlier step. Markdown, raw and empty code cells are ignored (indexes still count
    them).

Edges, data and order
    Once the cells are grouped into steps, ``edges.resolve_edges`` works out what each step
    reads from which other step and the order the steps run in; its module docstring has the
    rules.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlplat.errors import InvalidSpecError, NotFoundError
from jupyter_mlplat.pipeline import deps
from jupyter_mlplat.pipeline.edges import Scope, StepBuild, cell_error, resolve_edges
from jupyter_mlplat.pipeline.spec import (
    STEP_OPTIONS,
    CellRef,
    Parameter,
    PipelineSpec,
)

#: The step holding code cells above the first step mark.
START_STEP = "start"
#: The only step of a notebook that has no step marks.
SINGLE_STEP = "main"
#: Roles of cells that are not steps.
ROLES = ("imports", "functions", "parameters", "metrics", "skip")

STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_ROLE_TAGS = {
    "imports": "imports",
    "functions": "functions",
    "parameters": "parameters",
    "pipeline-parameters": "parameters",
    "pipeline-metrics": "metrics",
    "skip": "skip",
}
_OUR_PREFIXES = ("step", "block", "prev", "limit", "cache")
_METADATA_KEYS = ("step", "role", "after", "inputs", "outputs", *STEP_OPTIONS)
_NOT_NOTEBOOK = "{path} is not a Jupyter notebook (.ipynb, nbformat 4): {detail}"


# --- loading -------------------------------------------------------------------------------------


def load_notebook(path: str | Path) -> dict[str, Any]:
    """Read a notebook file as its JSON dict.

    Parameters
    ----------
    path : str or Path
        The ``.ipynb`` file.

    Returns
    -------
    dict
        The notebook JSON, checked to have a ``cells`` list and ``nbformat`` 4.

    Raises
    ------
    NotFoundError
        When nothing exists at ``path``.
    InvalidSpecError
        When ``path`` is a directory, not an ``.ipynb`` file, not JSON or not a notebook.
    """
    file = Path(path)
    if not file.exists():
        raise NotFoundError(f"notebook not found: {path}")
    if file.is_dir():
        raise InvalidSpecError(_NOT_NOTEBOOK.format(path=path, detail="it is a directory"))
    if file.suffix.lower() != ".ipynb":
        detail = f"the file name ends in {file.suffix!r}" if file.suffix else "no .ipynb extension"
        raise InvalidSpecError(_NOT_NOTEBOOK.format(path=path, detail=detail))
    try:
        data = json.loads(file.read_bytes())
    except json.JSONDecodeError as err:
        detail = f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
        raise InvalidSpecError(_NOT_NOTEBOOK.format(path=path, detail=detail))
    except UnicodeDecodeError:
        raise InvalidSpecError(_NOT_NOTEBOOK.format(path=path, detail="not UTF-8 text"))
    except OSError as err:
        raise InvalidSpecError(f"cannot read notebook {path}: {err.strerror}")
    _check_notebook(data, str(path))
    return data


def parse_path(path: str | Path) -> PipelineSpec:
    """Load and parse a notebook file; the pipeline is named after the file's stem.

    Parameters
    ----------
    path : str or Path
        The ``.ipynb`` file.

    Returns
    -------
    PipelineSpec

    Raises
    ------
    NotFoundError
        When the file does not exist.
    InvalidSpecError
        When it is not a notebook or its marks, code or edges are invalid.
    """
    return parse_notebook(load_notebook(path), path=str(path), name=Path(path).stem)


def parse_notebook(nb: dict[str, Any], *, path: str, name: str | None = None) -> PipelineSpec:
    """Turn a notebook's cells into a ``PipelineSpec`` (rules: this module's docstring, ``edges``'s).

    Parameters
    ----------
    nb : dict
        The notebook JSON (nbformat 4).
    path : str
        The notebook's path, recorded on the spec and used in messages.
    name : str, optional
        The pipeline name; defaults to the stem of ``path``.

    Returns
    -------
    PipelineSpec
        Steps in dependency-respecting notebook order, with inputs, outputs, parameters read,
        metrics and options.

    Raises
    ------
    InvalidSpecError
        Naming the cell (index in the cell list and first line) and what was expected.
    """
    _check_notebook(nb, path)
    cells = _read_cells(nb["cells"])
    sections, builds = _group(cells)
    for cell in cells:
        if cell.mark.role != "skip":
            cell.parse()
    shared = deps.analyze_cells([c.parsed for c in sections["imports"] + sections["functions"]])
    scope = Scope(
        shared={n for usage in shared for n in usage.defines},
        shared_star=any(usage.star_import for usage in shared),
        parameters=_parameters(sections["parameters"]),
    )
    ordered = resolve_edges(builds, scope, sections["metrics"])
    kernelspec = (nb.get("metadata") or {}).get("kernelspec") or {}
    kernel = kernelspec.get("name") if isinstance(kernelspec, dict) else None
    return PipelineSpec(
        name=name if name is not None else Path(path).stem,
        path=path,
        steps=tuple(step.spec() for step in ordered),
        parameters=tuple(scope.parameters.values()),
        imports=tuple(c.ref for c in sections["imports"]),
        functions=tuple(c.ref for c in sections["functions"]),
        kernel=kernel if isinstance(kernel, str) else None,
        policies=_policies(nb, path),
    )


def _policies(nb: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    """``metadata.mlplat.policies``: model name -> policy fields (checked in full at run start)."""
    meta = (nb.get("metadata") or {}).get("mlplat") or {}
    if not isinstance(meta, dict):
        raise InvalidSpecError(f"{path}: notebook metadata.mlplat is {meta!r}; expected an object")
    policies = meta.get("policies") or {}
    if not isinstance(policies, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in policies.items()
    ):
        raise InvalidSpecError(
            f"{path}: notebook metadata.mlplat.policies is {policies!r}; expected an object "
            'mapping model names to policies, e.g. {"churn": {"metric": "roc_auc", '
            '"min_value": 0.8}}'
        )
    return {name: dict(policy) for name, policy in policies.items()}


def _check_notebook(nb: Any, path: str) -> None:
    if not isinstance(nb, dict):
        detail = f"the JSON is a {type(nb).__name__}, not an object"
    elif not isinstance(nb.get("cells"), list):
        detail = "it has no 'cells' list"
    elif nb.get("nbformat") != 4:
        detail = f"it is nbformat {nb.get('nbformat')!r}; open and save it in JupyterLab to upgrade"
    else:
        return
    raise InvalidSpecError(_NOT_NOTEBOOK.format(path=path, detail=detail))


# --- cells and marks -----------------------------------------------------------------------------


@dataclass
class _Mark:
    role: str | None = None
    step: str | None = None
    after: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] | None = None
    outputs: list[str] | None = None


@dataclass
class _Cell:
    index: int
    id: str | None
    source: str
    mark: _Mark
    parsed: deps.ParsedCell | None = None

    def parse(self) -> None:
        try:
            self.parsed = deps.parse(self.source)
        except SyntaxError as err:
            raise cell_error(
                self,
                f"invalid Python at line {err.lineno}: {err.msg}",
                "valid Python (IPython %magics and !shell lines are allowed)",
            )

    @property
    def ref(self) -> CellRef:
        assert self.parsed is not None
        return CellRef(self.index, self.id, self.source, self.parsed.normalized)


def _read_cells(raw_cells: list[Any]) -> list[_Cell]:
    cells = []
    for index, raw in enumerate(raw_cells):
        if not isinstance(raw, dict):
            raise InvalidSpecError(f"cell {index}: not a JSON object; expected an nbformat 4 cell")
        if raw.get("cell_type") != "code":
            continue
        source = raw.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise InvalidSpecError(
                f"cell {index}: its source is a {type(source).__name__}; "
                "expected a string or a list of strings"
            )
        if not source.strip():
            continue
        cell_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        cell = _Cell(index, cell_id, source, _Mark())
        cell.mark = _read_mark(cell, raw.get("metadata") or {})
        cells.append(cell)
    return cells


def _read_mark(cell: _Cell, metadata: Any) -> _Mark:
    if not isinstance(metadata, dict):
        raise cell_error(cell, "its metadata is not an object", "a JSON object")
    mark = _Mark()
    names: list[str] = []
    roles: set[str] = set()
    tags = metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise cell_error(cell, f"metadata.tags is {tags!r}", "a list of strings")
    for tag in tags:
        if tag in _ROLE_TAGS:
            roles.add(_ROLE_TAGS[tag])
            continue
        head, colon, rest = tag.partition(":")
        if head not in _OUR_PREFIXES:
            if tag.startswith("pipeline-"):
                raise cell_error(
                    cell, f"unknown tag {tag!r}", "pipeline-parameters or pipeline-metrics"
                )
            continue  # not ours (hide-input, remove_cell, Kale's annotation:/label: ...)
        if head in ("step", "block"):
            if head == "block" and colon and not rest:
                continue  # Kale ignores the empty block: its extension may write
            names.append(_step_name(cell, rest if colon else "", f"tag {tag!r}", "step:<name>"))
        elif head == "prev":
            mark.after.append(
                _step_name(cell, rest if colon else "", f"tag {tag!r}", "prev:<name>")
            )
        elif head == "cache":
            if rest not in ("enabled", "disabled") or not colon:
                raise cell_error(cell, f"unknown tag {tag!r}", "cache:enabled or cache:disabled")
            _set_option(cell, mark, "cache", rest == "enabled", f"tag {tag!r}")
        else:
            resource, _, value = rest.rpartition(":")
            if resource != "nvidia.com/gpu" or not (value.isascii() and value.isdigit()):
                raise cell_error(cell, f"unknown tag {tag!r}", "limit:nvidia.com/gpu:<n>, n >= 0")
            _set_option(cell, mark, "gpu", int(value), f"tag {tag!r}")
    _read_metadata(cell, metadata.get("mlplat"), mark, names, roles)
    if len(set(names)) > 1:
        raise cell_error(
            cell,
            f"two step names on one cell: {', '.join(repr(n) for n in dict.fromkeys(names))}",
            "one step name per cell (tags step:/block: and metadata.mlplat.step agree)",
        )
    if len(roles) > 1:
        raise cell_error(cell, f"roles {sorted(roles)} on one cell", "one role per cell")
    if roles and names:
        raise cell_error(
            cell,
            f"marked both as step {names[0]!r} and as {next(iter(roles))!r}",
            "a cell to be either a step or an imports/functions/parameters/metrics/skip cell",
        )
    mark.role = next(iter(roles), None)
    mark.step = names[0] if names else None
    has_io = mark.inputs is not None or mark.outputs is not None
    if mark.step is None and (mark.after or mark.options or has_io):
        found = ", ".join(
            [*(["after/prev:"] if mark.after else []), *mark.options]
            + [k for k in ("inputs", "outputs") if getattr(mark, k) is not None]
        )
        raise cell_error(
            cell,
            f"step options ({found}) on a cell that does not start a step",
            "them on a cell marked as a step (tag step:<name> or metadata.mlplat.step)",
        )
    return mark


def _read_metadata(cell: _Cell, meta: Any, mark: _Mark, names: list[str], roles: set[str]) -> None:
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise cell_error(
            cell, f"metadata.mlplat is {meta!r}", 'an object such as {"step": "train"}'
        )
    unknown = [k for k in meta if k not in _METADATA_KEYS]
    if unknown:
        raise cell_error(
            cell,
            f"unknown key {unknown[0]!r} in metadata.mlplat",
            f"keys among {', '.join(_METADATA_KEYS)}",
        )
    if "role" in meta:
        if meta["role"] not in ROLES:
            raise cell_error(cell, f"metadata.mlplat.role is {meta['role']!r}", f"one of {ROLES}")
        roles.add(meta["role"])
    if "step" in meta:
        step = meta["step"]
        if not isinstance(step, str):
            raise cell_error(cell, f"metadata.mlplat.step is {step!r}", "a step name (a string)")
        names.append(_step_name(cell, step, "metadata.mlplat.step", "a step name"))
    if "after" in meta:
        after = meta["after"]
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            raise cell_error(cell, f"metadata.mlplat.after is {after!r}", "a list of step names")
        mark.after.extend(_step_name(cell, a, "metadata.mlplat.after", "step names") for a in after)
    for key in ("inputs", "outputs"):
        if key in meta:
            value = meta[key]
            if not isinstance(value, list) or not all(
                isinstance(v, str) and v.isidentifier() for v in value
            ):
                raise cell_error(
                    cell, f"metadata.mlplat.{key} is {value!r}", "a list of variable names"
                )
            setattr(mark, key, list(dict.fromkeys(value)))
    for key in STEP_OPTIONS:
        if key in meta:
            _set_option(cell, mark, key, meta[key], f"metadata.mlplat.{key}")


def _step_name(cell: _Cell, name: str, origin: str, expected: str) -> str:
    if not STEP_NAME.match(name):
        problem = f"{origin} has no step name" if not name else f"{origin}: bad step name {name!r}"
        raise cell_error(cell, problem, f"{expected} with a name matching [A-Za-z_][A-Za-z0-9_-]*")
    return name


def _set_option(cell: _Cell, mark: _Mark, key: str, value: Any, origin: str) -> None:
    expected = _option_problem(key, value)
    if expected:
        raise cell_error(cell, f"{origin} is {value!r}", f"{key} to be {expected}")
    if key in mark.options and mark.options[key] != value:
        raise cell_error(
            cell,
            f"{key} is set twice with different values ({mark.options[key]!r} and {value!r})",
            "the tag and metadata.mlplat to agree",
        )
    mark.options[key] = float(value) if key == "timeout" and value is not None else value


def _option_problem(key: str, value: Any) -> str | None:
    """What ``value`` should be for option ``key``; None when it is fine."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in ("gpu", "retries"):
        return None if is_int and value >= 0 else "a non-negative integer"
    if key == "timeout":
        number = is_int or isinstance(value, float)
        return None if value is None or (number and value > 0) else "a positive number of seconds"
    if key == "threads":
        return None if value is None or (is_int and value > 0) else "a positive integer"
    if key == "cache":
        return None if isinstance(value, bool) else "true or false"
    if key == "kernel":
        return None if value is None or (isinstance(value, str) and value) else "a kernel name"
    if key == "env":
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        return None if ok else "an object of string names to string values"
    return "a known option"


# --- grouping cells into sections and steps ------------------------------------------------------


def _add_mark(build: StepBuild, cell: _Cell) -> None:
    """Merge a (possibly repeated, Kale-style) step mark into the step."""
    mark = cell.mark
    for step in mark.after:
        build.after.setdefault(step, cell)
    for key, value in mark.options.items():
        if key in build.options and build.options[key] != value:
            first = build.option_cells[key]
            raise cell_error(
                cell,
                f"step {build.name!r} is marked again with {key}={value!r}, "
                f"but cell {first.index} gives {key}={build.options[key]!r}",
                f"the same options on every cell marked {build.name!r}, or on one of them only",
            )
        build.options[key] = value
        build.option_cells.setdefault(key, cell)
    for key in ("inputs", "outputs"):
        new = getattr(mark, key)
        old = getattr(build, key)
        if new is not None and old is not None and new != old:
            raise cell_error(
                cell,
                f"step {build.name!r} is marked again with different {key} ({new} vs {old})",
                f"{key} given once per step",
            )
        if new is not None:
            setattr(build, key, new)


def _group(cells: list[_Cell]) -> tuple[dict[str, list[_Cell]], dict[str, StepBuild]]:
    sections: dict[str, list[_Cell]] = {role: [] for role in ROLES if role != "skip"}
    steps: dict[str, StepBuild] = {}
    has_marks = any(cell.mark.step for cell in cells)
    seen_mark = False
    open_step: StepBuild | None = None
    closed: tuple[_Cell, str] | None = None  # the section cell that ended a step, and the step
    for cell in cells:
        role = cell.mark.role
        if role == "skip":
            continue
        if role is not None:
            sections[role].append(cell)
            if open_step is not None and seen_mark:
                closed = (cell, open_step.name)
            open_step = None
            continue
        if cell.mark.step is not None:
            seen_mark = True
            open_step = steps.setdefault(cell.mark.step, StepBuild(cell.mark.step))
            _add_mark(open_step, cell)
        elif open_step is None:
            if seen_mark and closed is not None:
                section, ended = closed
                raise cell_error(
                    cell,
                    f"this unmarked cell follows the {section.mark.role} cell {section.index}, "
                    f"which ends step {ended!r}, so it belongs to no step",
                    "a step mark on it (tag step:<name> or metadata.mlplat.step), "
                    f"or the cell above cell {section.index}",
                )
            name = START_STEP if has_marks else SINGLE_STEP
            open_step = steps.setdefault(name, StepBuild(name))
        open_step.cells.append(cell)
    return sections, steps


# --- parameters ----------------------------------------------------------------------------------


def _parameters(cells: list[_Cell]) -> dict[str, Parameter]:
    found: dict[str, Parameter] = {}
    for cell in cells:
        assert cell.parsed is not None
        if cell.parsed.tree is None:
            raise cell_error(
                cell, "a cell magic in a parameters cell", "only assignments name = value"
            )
        for stmt in cell.parsed.tree.body:
            annotation: ast.expr | None = None
            if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
                targets, value = [t.id for t in stmt.targets], stmt.value  # type: ignore[attr-defined]
            elif (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.value is not None
            ):
                targets, value, annotation = [stmt.target.id], stmt.value, stmt.annotation
            else:
                text = (ast.get_source_segment(cell.parsed.code, stmt) or "").split("\n")[0]
                raise cell_error(
                    cell,
                    f"line {stmt.lineno} of a parameters cell is not an assignment: {text}",
                    "only assignments name = value in a parameters cell (move code to a step)",
                )
            source = ast.get_source_segment(cell.parsed.code, value) or ast.unparse(value)
            try:
                default, literal = ast.literal_eval(value), True
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                default, literal = None, False
            type_name = type(default).__name__
            if not literal and isinstance(annotation, ast.Name):
                type_name = annotation.id
            for name in targets:
                found[name] = Parameter(name, source, default, literal, type_name)
    return found
