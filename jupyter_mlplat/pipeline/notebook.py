"""Notebook cells -> ``PipelineSpec``: marks, sections, steps and the edges between them.

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

Edges and data
    A step that reads a name depends on the step whose cell defines or mutates it nearest above
    the reading cell; the name becomes an output of that step and an input of the reader.
    Names from ``imports``/``functions`` cells, parameters and builtins are visible to every
    step and are not data; a parameter an earlier step redefines is data. Names a step binds
    only by ``import`` are not passed on (modules are not data): a later step that needs them is
    told to put the import in an ``imports`` cell. Explicit ``inputs``/``outputs`` replace the
    inferred ones for their step. ``steps`` is in notebook order, except that a step whose
    ``after`` names a later step moves just behind it, so every step comes after its upstream.
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
from jupyter_mlplat.pipeline.spec import (
    STEP_OPTIONS,
    CellRef,
    Parameter,
    PipelineSpec,
    StepSpec,
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
    """Turn a notebook's cells into a ``PipelineSpec`` (see the module docstring for the rules).

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
    context = _Context(
        shared={n for usage in shared for n in usage.defines},
        shared_star=any(usage.star_import for usage in shared),
        parameters=_parameters(sections["parameters"]),
    )
    steps = _resolve(builds, context)
    _attach_metrics(steps, sections["metrics"], context)
    ordered = _order(steps)
    kernelspec = (nb.get("metadata") or {}).get("kernelspec") or {}
    kernel = kernelspec.get("name") if isinstance(kernelspec, dict) else None
    return PipelineSpec(
        name=name if name is not None else Path(path).stem,
        path=path,
        steps=tuple(step.spec() for step in ordered),
        parameters=tuple(context.parameters.values()),
        imports=tuple(c.ref for c in sections["imports"]),
        functions=tuple(c.ref for c in sections["functions"]),
        kernel=kernel if isinstance(kernel, str) else None,
    )


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
            raise _error(
                self,
                f"invalid Python at line {err.lineno}: {err.msg}",
                "valid Python (IPython %magics and !shell lines are allowed)",
            )

    @property
    def ref(self) -> CellRef:
        assert self.parsed is not None
        return CellRef(self.index, self.id, self.source, self.parsed.normalized)


def _where(index: int, source: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    return f'cell {index} ("{first}")'


def _error(cell: _Cell, problem: str, expected: str) -> InvalidSpecError:
    return InvalidSpecError(f"{_where(cell.index, cell.source)}: {problem}; expected {expected}")


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
        raise _error(cell, "its metadata is not an object", "a JSON object")
    mark = _Mark()
    names: list[str] = []
    roles: set[str] = set()
    tags = metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _error(cell, f"metadata.tags is {tags!r}", "a list of strings")
    for tag in tags:
        if tag in _ROLE_TAGS:
            roles.add(_ROLE_TAGS[tag])
            continue
        head, colon, rest = tag.partition(":")
        if head not in _OUR_PREFIXES:
            if tag.startswith("pipeline-"):
                raise _error(
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
                raise _error(cell, f"unknown tag {tag!r}", "cache:enabled or cache:disabled")
            _set_option(cell, mark, "cache", rest == "enabled", f"tag {tag!r}")
        else:
            resource, _, value = rest.rpartition(":")
            if resource != "nvidia.com/gpu" or not value.isdigit():
                raise _error(cell, f"unknown tag {tag!r}", "limit:nvidia.com/gpu:<n>, n >= 0")
            _set_option(cell, mark, "gpu", int(value), f"tag {tag!r}")
    _read_metadata(cell, metadata.get("mlplat"), mark, names, roles)
    if len(set(names)) > 1:
        raise _error(
            cell,
            f"two step names on one cell: {', '.join(repr(n) for n in dict.fromkeys(names))}",
            "one step name per cell (tags step:/block: and metadata.mlplat.step agree)",
        )
    if len(roles) > 1:
        raise _error(cell, f"roles {sorted(roles)} on one cell", "one role per cell")
    if roles and names:
        raise _error(
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
        raise _error(
            cell,
            f"step options ({found}) on a cell that does not start a step",
            "them on a cell marked as a step (tag step:<name> or metadata.mlplat.step)",
        )
    return mark


def _read_metadata(cell: _Cell, meta: Any, mark: _Mark, names: list[str], roles: set[str]) -> None:
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise _error(cell, f"metadata.mlplat is {meta!r}", 'an object such as {"step": "train"}')
    unknown = [k for k in meta if k not in _METADATA_KEYS]
    if unknown:
        raise _error(
            cell,
            f"unknown key {unknown[0]!r} in metadata.mlplat",
            f"keys among {', '.join(_METADATA_KEYS)}",
        )
    if "role" in meta:
        if meta["role"] not in ROLES:
            raise _error(cell, f"metadata.mlplat.role is {meta['role']!r}", f"one of {ROLES}")
        roles.add(meta["role"])
    if "step" in meta:
        step = meta["step"]
        if not isinstance(step, str):
            raise _error(cell, f"metadata.mlplat.step is {step!r}", "a step name (a string)")
        names.append(_step_name(cell, step, "metadata.mlplat.step", "a step name"))
    if "after" in meta:
        after = meta["after"]
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            raise _error(cell, f"metadata.mlplat.after is {after!r}", "a list of step names")
        mark.after.extend(_step_name(cell, a, "metadata.mlplat.after", "step names") for a in after)
    for key in ("inputs", "outputs"):
        if key in meta:
            value = meta[key]
            if not isinstance(value, list) or not all(
                isinstance(v, str) and v.isidentifier() for v in value
            ):
                raise _error(
                    cell, f"metadata.mlplat.{key} is {value!r}", "a list of variable names"
                )
            setattr(mark, key, list(dict.fromkeys(value)))
    for key in STEP_OPTIONS:
        if key in meta:
            _set_option(cell, mark, key, meta[key], f"metadata.mlplat.{key}")


def _step_name(cell: _Cell, name: str, origin: str, expected: str) -> str:
    if not STEP_NAME.match(name):
        problem = f"{origin} has no step name" if not name else f"{origin}: bad step name {name!r}"
        raise _error(cell, problem, f"{expected} with a name matching [A-Za-z_][A-Za-z0-9_-]*")
    return name


def _set_option(cell: _Cell, mark: _Mark, key: str, value: Any, origin: str) -> None:
    expected = _option_problem(key, value)
    if expected:
        raise _error(cell, f"{origin} is {value!r}", f"{key} to be {expected}")
    if key in mark.options and mark.options[key] != value:
        raise _error(
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


@dataclass
class _StepBuild:
    name: str
    cells: list[_Cell] = field(default_factory=list)
    after: dict[str, _Cell] = field(default_factory=dict)  # upstream step -> cell naming it
    options: dict[str, Any] = field(default_factory=dict)
    option_cells: dict[str, _Cell] = field(default_factory=dict)
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    # filled by _resolve
    data_inputs: dict[str, str] = field(default_factory=dict)
    data_outputs: set[str] = field(default_factory=set)
    params: set[str] = field(default_factory=set)
    metrics: list[str] = field(default_factory=list)
    edge_cells: dict[str, tuple[_Cell, str]] = field(default_factory=dict)  # why it is upstream
    upstream: set[str] = field(default_factory=set)
    usages: list[deps.Usage] = field(default_factory=list)

    def add_mark(self, cell: _Cell) -> None:
        """Merge a (possibly repeated, Kale-style) step mark into the step."""
        mark = cell.mark
        for step in mark.after:
            self.after.setdefault(step, cell)
        for key, value in mark.options.items():
            if key in self.options and self.options[key] != value:
                first = self.option_cells[key]
                raise _error(
                    cell,
                    f"step {self.name!r} is marked again with {key}={value!r}, "
                    f"but cell {first.index} gives {key}={self.options[key]!r}",
                    f"the same options on every cell marked {self.name!r}, or on one of them only",
                )
            self.options[key] = value
            self.option_cells.setdefault(key, cell)
        for key in ("inputs", "outputs"):
            new = getattr(mark, key)
            old = getattr(self, key)
            if new is not None and old is not None and new != old:
                raise _error(
                    cell,
                    f"step {self.name!r} is marked again with different {key} ({new} vs {old})",
                    f"{key} given once per step",
                )
            if new is not None:
                setattr(self, key, new)

    def spec(self) -> StepSpec:
        if self.outputs is not None:
            outputs = tuple(self.outputs)
        else:
            outputs = tuple(sorted(self.data_outputs))
        return StepSpec(
            name=self.name,
            cells=tuple(cell.ref for cell in self.cells),
            after=tuple(self.after),
            upstream=tuple(sorted(self.upstream)),
            inputs=dict(sorted(self.data_inputs.items())),
            outputs=outputs,
            params=tuple(sorted(self.params)),
            metrics=tuple(self.metrics),
            **self.options,
        )


def _group(cells: list[_Cell]) -> tuple[dict[str, list[_Cell]], dict[str, _StepBuild]]:
    sections: dict[str, list[_Cell]] = {role: [] for role in ROLES if role != "skip"}
    steps: dict[str, _StepBuild] = {}
    has_marks = any(cell.mark.step for cell in cells)
    seen_mark = False
    open_step: _StepBuild | None = None
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
            open_step = steps.setdefault(cell.mark.step, _StepBuild(cell.mark.step))
            open_step.add_mark(cell)
        elif open_step is None:
            if seen_mark and closed is not None:
                section, ended = closed
                raise _error(
                    cell,
                    f"this unmarked cell follows the {section.mark.role} cell {section.index}, "
                    f"which ends step {ended!r}, so it belongs to no step",
                    "a step mark on it (tag step:<name> or metadata.mlplat.step), "
                    f"or the cell above cell {section.index}",
                )
            name = START_STEP if has_marks else SINGLE_STEP
            open_step = steps.setdefault(name, _StepBuild(name))
        open_step.cells.append(cell)
    return sections, steps


# --- parameters ----------------------------------------------------------------------------------


def _parameters(cells: list[_Cell]) -> dict[str, Parameter]:
    found: dict[str, Parameter] = {}
    for cell in cells:
        assert cell.parsed is not None
        if cell.parsed.tree is None:
            raise _error(cell, "a cell magic in a parameters cell", "only assignments name = value")
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
                raise _error(
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


# --- data edges ----------------------------------------------------------------------------------


@dataclass
class _Context:
    shared: set[str]  # defined by imports/functions cells
    shared_star: bool
    parameters: dict[str, Parameter]


def _resolve(builds: dict[str, _StepBuild], context: _Context) -> list[_StepBuild]:
    """Fill each step's inputs, outputs, params and upstream from what its cells read."""
    for build in builds.values():
        build.usages = deps.analyze_cells([c.parsed for c in build.cells])
    usages = {name: build.usages for name, build in builds.items()}
    imported_only: dict[str, set[str]] = {}
    import_sites: dict[str, tuple[int, str]] = {}
    for name, cell_usages in usages.items():
        assigned = {n for u in cell_usages for n in u.defines if n not in u.imported}
        imported_only[name] = {n for u in cell_usages for n in u.imported} - assigned
        for cell, usage in zip(builds[name].cells, cell_usages, strict=True):
            for imp in usage.imported:
                if imp in imported_only[name]:
                    import_sites.setdefault(imp, (cell.index, name))
    not_data = context.shared | deps.BUILTINS | set(import_sites)

    # every (cell index, step) that binds each name, in notebook order
    producers: dict[str, list[tuple[int, str]]] = {}
    for name, build in builds.items():
        declared = None if build.outputs is None else set(build.outputs)
        for cell, usage in zip(build.cells, usages[name], strict=True):
            provided = [n for n in usage.defines if n not in imported_only[name]]
            provided += [n for n in usage.mutates if n not in not_data]
            for var in dict.fromkeys(provided):
                if declared is None or var in declared:
                    producers.setdefault(var, []).append((cell.index, name))
        for var in declared or ():
            if all(step != name for _, step in producers.get(var, [])):
                producers.setdefault(var, []).append((build.cells[-1].index, name))
    for sites in producers.values():
        sites.sort()

    def producer(var: str, index: int, reader: str) -> str | None:
        best = None
        for position, step in producers.get(var, ()):
            if position >= index:
                break
            if step != reader:
                best = step
        return best

    for name, build in builds.items():
        first = build.cells[0]
        for cell, usage in zip(build.cells, usages[name], strict=True):
            for var in usage.reads:
                if var in build.data_inputs or var in build.params:
                    continue
                source = producer(var, cell.index, name)
                if source is not None:
                    build.data_inputs[var] = source
                    build.edge_cells.setdefault(source, (cell, f"reads {var!r} from"))
                elif var in context.parameters:
                    build.params.add(var)
                elif var in context.shared or var in deps.BUILTINS:
                    continue
                elif build.inputs is None and not (
                    context.shared_star or any(u.star_import for u in usages[name])
                ):
                    raise _undefined(cell, var, producers, import_sites)
        if build.inputs is not None:
            declared_inputs = {}
            for var in build.inputs:
                source = producer(var, first.index, name)
                if source is None:
                    raise _error(
                        first,
                        f"metadata.mlplat.inputs names {var!r}, which no earlier step defines",
                        "inputs that a step above this one defines or lists in its outputs",
                    )
                declared_inputs[var] = source
                build.edge_cells.setdefault(source, (first, f"reads {var!r} from"))
            build.data_inputs = declared_inputs
    for build in builds.values():
        for var, source in build.data_inputs.items():
            builds[source].data_outputs.add(var)
        for step, cell in build.after.items():
            if step not in builds:
                raise _error(
                    cell,
                    f"after/prev: names step {step!r}, which is not a step of this notebook",
                    f"one of: {', '.join(builds)}",
                )
            build.edge_cells.setdefault(step, (cell, "runs after"))
        build.upstream = set(build.after) | set(build.data_inputs.values())
    return list(builds.values())


def _undefined(
    cell: _Cell,
    var: str,
    producers: dict[str, list[tuple[int, str]]],
    import_sites: dict[str, tuple[int, str]],
) -> InvalidSpecError:
    if var in import_sites:
        index, step = import_sites[var]
        return _error(
            cell,
            f"name {var!r} is imported by step {step!r} (cell {index}), "
            "and imports are not passed between steps",
            "the import in a cell tagged imports (or repeated in this step)",
        )
    problem = f"name {var!r} is not defined by any earlier step, parameter or import"
    later = [(i, step) for i, step in producers.get(var, ()) if i > cell.index]
    if later:
        problem += f"; defined later by step {later[0][1]!r} (cell {later[0][0]})"
    return _error(
        cell,
        problem,
        "a name defined above this cell (in a step, the parameters or an imports cell)",
    )


def _attach_metrics(steps: list[_StepBuild], cells: list[_Cell], context: _Context) -> None:
    """Each name a metrics cell reads goes to the last step that defines it."""
    if not cells:
        return
    by_name = {step.name: step for step in steps}
    last: dict[str, tuple[int, str]] = {}
    for step in steps:
        for cell, usage in zip(step.cells, step.usages, strict=True):
            for var in (*usage.defines, *usage.mutates):
                if var not in last or last[var][0] < cell.index:
                    last[var] = (cell.index, step.name)
    for cell, usage in zip(cells, deps.analyze_cells([c.parsed for c in cells]), strict=True):
        for var in usage.reads:
            if var in deps.BUILTINS or var in context.shared:
                continue
            if var not in last:
                raise _error(
                    cell,
                    f"metric {var!r} is not defined by any step",
                    "pipeline-metrics to name variables that a step assigns",
                )
            owner = by_name[last[var][1]]
            if var not in owner.metrics:
                owner.metrics.append(var)


def _order(steps: list[_StepBuild]) -> list[_StepBuild]:
    """Notebook order, moved only where needed so that each step follows its upstream."""
    placed: list[_StepBuild] = []
    done: set[str] = set()
    waiting = list(steps)
    while waiting:
        ready = next((s for s in waiting if s.upstream <= done), None)
        if ready is None:
            raise _cycle(waiting)
        waiting.remove(ready)
        placed.append(ready)
        done.add(ready.name)
    return placed


def _cycle(waiting: list[_StepBuild]) -> InvalidSpecError:
    by_name = {step.name: step for step in waiting}
    path = [waiting[0].name]
    while True:
        current = by_name[path[-1]]
        nxt = next(up for up in sorted(current.upstream) if up in by_name)
        if nxt in path:
            loop = path[path.index(nxt) :] + [nxt]
            break
        path.append(nxt)
    loop.reverse()  # upstream first: a -> b means b runs after a
    edges = list(zip(loop, loop[1:]))
    explicit = [(up, down) for up, down in edges if up in by_name[down].after]
    up, down = (explicit or edges)[0]
    cell = by_name[down].edge_cells[up][0]
    why = ", ".join(
        f"{d!r} {by_name[d].edge_cells[u][1]} {u!r} (cell {by_name[d].edge_cells[u][0].index})"
        for u, d in edges
    )
    return _error(
        cell,
        f"the steps form a cycle: {' -> '.join(loop)}: {why}",
        "each step to depend only on steps that do not depend on it (check after/prev:, and "
        "cells that mark a step again further down, which join the earlier step)",
    )
