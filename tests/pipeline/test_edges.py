"""edges: data edges from reads and defines, explicit after/prev:, run order, cycles and errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.pipeline import deps
from jupyter_mlplat.pipeline.edges import Scope, StepBuild, cell_error, resolve_edges
from jupyter_mlplat.pipeline.spec import CellRef
from tests.pipeline.nbbuild import code, md
from tests.pipeline.test_notebook import assert_names_cell, parse, parse_error

# --- data edges ----------------------------------------------------------------------------------


def test_input_comes_from_the_nearest_earlier_definer(tmp_path):
    spec = parse(
        tmp_path,
        code("x = 1", tags=["step:first"]),
        code("x = 2", tags=["step:second"]),
        code("y = x", tags=["step:third"]),
    )
    assert spec.step("third").inputs == {"x": "second"}
    assert spec.step("third").upstream == ("second",)
    assert spec.step("second").outputs == ("x",)
    assert spec.step("first").outputs == ()


def test_diamond(tmp_path):
    spec = parse(
        tmp_path,
        code("df = [1, 2, 3]", tags=["step:load"]),
        code("fa = [v + 1 for v in df]", tags=["step:fa"]),
        code("fb = [v * 2 for v in df]", tags=["step:fb"]),
        code("model = list(zip(fa, fb))", tags=["step:train"]),
    )
    train = spec.step("train")
    assert train.upstream == ("fa", "fb")
    assert train.inputs == {"fa": "fa", "fb": "fb"}
    assert spec.step("fa").inputs == {"df": "load"}
    assert spec.step("fb").inputs == {"df": "load"}
    assert spec.step("load").outputs == ("df",)
    assert spec.downstream("load") == ["load", "fa", "fb", "train"]


def test_local_definition_before_read_is_not_an_input(tmp_path):
    spec = parse(
        tmp_path,
        code("x = 1", tags=["step:a"]),
        code("x = 5\ny = x", tags=["step:b"]),
    )
    assert spec.step("b").inputs == {}
    assert spec.step("b").upstream == ()


@pytest.mark.parametrize(
    "mutation",
    [
        "df.dropna(inplace=True)",
        "df.fit([1])",
        "df['k'] = 1",
        "df.attr = 1",
        "df.append(1)",
    ],
)
def test_mutation_makes_the_mutating_step_the_producer(tmp_path, mutation):
    spec = parse(
        tmp_path,
        code("df = make()", tags=["step:load"]),
        code(mutation, tags=["step:clean"]),
        code("out = df", tags=["step:train"]),
        code("def make():\n    return {}", tags=["functions"]),
    )
    clean = spec.step("clean")
    assert clean.inputs == {"df": "load"}
    assert clean.outputs == ("df",)
    assert spec.step("train").inputs == {"df": "clean"}


def test_mutating_a_module_is_not_data(tmp_path):
    spec = parse(
        tmp_path,
        code("import sys", tags=["imports"]),
        code("sys.path.append('.')", tags=["step:a"]),
        code("p = sys.path", tags=["step:b"]),
    )
    assert spec.step("b").inputs == {}
    assert spec.step("a").outputs == ()


def test_parameters_are_read_per_step_and_an_earlier_redefinition_wins(tmp_path):
    spec = parse(
        tmp_path,
        code("lr = 0.1\nepochs = 3", tags=["pipeline-parameters"]),
        code("a = lr", tags=["step:one"]),
        code("b = epochs\nlr = lr / 2", tags=["step:two"]),
        code("c = lr * epochs", tags=["step:three"]),
    )
    assert spec.step("one").params == ("lr",)
    assert spec.step("two").params == ("epochs", "lr")
    three = spec.step("three")
    assert three.params == ("epochs",)
    assert three.inputs == {"lr": "two"}


def test_imports_and_functions_are_visible_to_every_step(tmp_path):
    spec = parse(
        tmp_path,
        code("import numpy as np", tags=["imports"]),
        code("def norm(v):\n    return np.linalg.norm(v)", tags=["functions"]),
        code("x = norm(np.ones(3))", tags=["step:a"]),
    )
    assert spec.step("a").inputs == {}


def test_metrics_attach_to_the_last_definer(tmp_path):
    spec = parse(
        tmp_path,
        code("acc = 0.1\nf1 = 0.2", tags=["step:first"]),
        code("acc = 0.9", tags=["step:second"]),
        code("acc, f1", tags=["pipeline-metrics"]),
    )
    assert spec.step("second").metrics == ("acc",)
    assert spec.step("first").metrics == ("f1",)


def test_explicit_inputs_and_outputs_override(tmp_path):
    spec = parse(
        tmp_path,
        code("a = 1\nb = 2", mlplat={"step": "make", "outputs": ["a", "b", "extra"]}),
        code("c = b + unknown_by_analysis", mlplat={"step": "use", "inputs": ["a"]}),
    )
    assert spec.step("make").outputs == ("a", "b", "extra")
    assert spec.step("use").inputs == {"a": "make"}
    assert spec.step("use").upstream == ("make",)


def test_explicit_output_the_analysis_cannot_see_feeds_a_reader(tmp_path):
    spec = parse(
        tmp_path,
        code("globals()['hidden'] = 1", mlplat={"step": "make", "outputs": ["hidden"]}),
        code("seen = hidden", tags=["step:use"]),
    )
    assert spec.step("use").inputs == {"hidden": "make"}


def test_after_a_later_step_orders_that_step_first(tmp_path):
    spec = parse(
        tmp_path,
        code("x = 1", mlplat={"step": "report", "after": ["train"]}),
        code("y = 2", tags=["step:train"]),
    )
    assert spec.step_names == ("train", "report")
    assert spec.step("report").upstream == ("train",)
    assert spec.ancestors("report") == ["train", "report"]


def test_magics_inside_steps(tmp_path):
    spec = parse(
        tmp_path,
        code("%matplotlib inline\n!pip list\nfiles = !ls", tags=["step:a"]),
        code("%%bash\necho hi", tags=["step:b"]),
        code("%%time\nn = len(files)", tags=["step:c"]),
    )
    assert spec.step("c").inputs == {"files": "a"}
    assert spec.step("b").cells[0].normalized == "%%bash\necho hi"


# --- resolve_edges on its own --------------------------------------------------------------------


@dataclass
class Cell:
    index: int
    source: str

    def __post_init__(self) -> None:
        self.parsed = deps.parse(self.source)

    @property
    def ref(self) -> CellRef:
        return CellRef(self.index, None, self.source, self.parsed.normalized)


def step(name: str, *cells: Cell, after: dict[str, Cell] | None = None) -> StepBuild:
    return StepBuild(name, list(cells), after=dict(after or {}))


def test_resolve_edges_fills_the_edges_and_orders_the_steps():
    report = Cell(2, "summary = len(df)")
    steps = {
        "load": step("load", Cell(1, "df = rows(3)")),
        "report": step("report", report, after={"train": report}),
        "train": step("train", Cell(3, "model = fit(df)\nacc = 1.0")),
    }
    scope = Scope(shared={"rows", "fit"}, shared_star=False, parameters={})
    ordered = resolve_edges(steps, scope, [Cell(4, "acc")])
    assert [s.name for s in ordered] == ["load", "train", "report"]
    assert steps["train"].data_inputs == {"df": "load"}
    assert steps["report"].upstream == {"load", "train"}
    assert steps["load"].data_outputs == {"df"}
    assert steps["train"].metrics == ["acc"]
    assert ordered[2].spec().upstream == ("load", "train")


def test_resolve_edges_reports_a_cycle_at_the_cell_of_an_explicit_edge():
    a, b = Cell(0, "x = 1"), Cell(1, "y = x")
    steps = {"a": step("a", a, after={"b": a}), "b": step("b", b)}
    with pytest.raises(InvalidSpecError) as info:
        resolve_edges(steps, Scope(shared=set(), shared_star=False, parameters={}))
    assert str(info.value).startswith(
        'cell 0 ("x = 1"): the steps form a cycle: a -> b -> a: '
        "'b' reads 'x' from 'a' (cell 1), 'a' runs after 'b' (cell 0); expected "
    )


def test_cell_error_names_the_cell_and_what_was_expected():
    error = cell_error(Cell(3, "\n  # a comment that is long " + "x" * 60), "it is bad", "it good")
    assert isinstance(error, InvalidSpecError)
    assert str(error) == (
        'cell 3 ("# a comment that is long ' + "x" * 32 + '..."): it is bad; expected it good'
    )


# --- errors --------------------------------------------------------------------------------------


def test_prev_naming_an_unknown_step(tmp_path):
    message = parse_error(
        tmp_path,
        code("x = 1", tags=["step:load"]),
        code("# train\ny = 2", tags=["step:train", "prev:lod"]),
    )
    assert_names_cell(message, 1, "# train")
    assert "names step 'lod'" in message
    assert "one of: load, train" in message


def test_cycle_from_explicit_edges(tmp_path):
    message = parse_error(
        tmp_path,
        code("x = 1", mlplat={"step": "a", "after": ["c"]}),
        code("y = x", tags=["step:b"]),
        code("z = y", tags=["step:c"]),
    )
    assert_names_cell(message, 0, "x = 1")
    assert "cycle: a -> b -> c -> a" in message


def test_cycle_from_data_through_an_extended_step(tmp_path):
    message = parse_error(
        tmp_path,
        code("x = 1", tags=["step:a"]),
        code("y = x", tags=["step:b"]),
        code("z = y", tags=["step:a"]),
    )
    assert_names_cell(message, 1, "y = x")
    assert (
        "cycle: a -> b -> a: 'b' reads 'x' from 'a' (cell 1), 'a' reads 'y' from 'b' (cell 2)"
        in (message)
    )


def test_step_after_itself_is_a_cycle(tmp_path):
    message = parse_error(tmp_path, code("x = 1", tags=["step:a", "prev:a"]))
    assert "cycle: a -> a" in message


def test_name_defined_by_no_earlier_step(tmp_path):
    message = parse_error(
        tmp_path,
        code("x = 1", tags=["step:a"]),
        md("text"),
        code("# uses y\nz = x + y", tags=["step:b"]),
        code("y = 2", tags=["step:c"]),
    )
    assert_names_cell(message, 2, "# uses y")
    assert (
        "name 'y' is not defined by any earlier step, parameter or import; "
        "defined later by step 'c'"
    ) in message


def test_name_defined_nowhere(tmp_path):
    message = parse_error(tmp_path, code("z = nowhere + 1", tags=["step:a"]))
    assert_names_cell(message, 0, "z = nowhere + 1")
    assert "name 'nowhere' is not defined" in message
    assert "defined later" not in message


def test_free_name_in_a_function_body_is_checked(tmp_path):
    message = parse_error(tmp_path, code("def f():\n    return ghost\n", tags=["step:a"]))
    assert "name 'ghost' is not defined" in message


def test_import_in_a_step_is_not_passed_on(tmp_path):
    message = parse_error(
        tmp_path,
        code("import pandas as pd\ndf = 1", tags=["step:a"]),
        code("t = pd.Timestamp(df)", tags=["step:b"]),
    )
    assert_names_cell(message, 1, "t = pd.Timestamp(df)")
    assert "'pd' is imported by step 'a' (cell 0)" in message
    assert "expected the import in a cell tagged imports" in message


def test_metric_no_step_defines(tmp_path):
    message = parse_error(
        tmp_path,
        code("acc = 1", tags=["step:a"]),
        code("print(acc, f1)", tags=["pipeline-metrics"]),
    )
    assert_names_cell(message, 1, "print(acc, f1)")
    assert "metric 'f1' is not defined by any step" in message
