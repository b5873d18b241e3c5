"""notebook: marks (metadata and Kale tags) -> steps, sections, parameters, edges and errors."""

from __future__ import annotations

import json
import time

import pytest

from jupyter_mlplat.errors import InvalidSpecError, NotFoundError
from jupyter_mlplat.pipeline.notebook import load_notebook, parse_notebook, parse_path
from jupyter_mlplat.pipeline.spec import PipelineSpec
from tests.pipeline.nbbuild import code, md, notebook, write


def parse(tmp_path, *cells, name="flow", kernel="python3") -> PipelineSpec:
    return parse_path(write(tmp_path, name, notebook(*cells, kernel=kernel)))


def parse_error(tmp_path, *cells) -> str:
    with pytest.raises(InvalidSpecError) as info:
        parse(tmp_path, *cells)
    return str(info.value)


def assert_names_cell(message: str, index: int, first_line: str) -> None:
    assert message.startswith(f'cell {index} ("{first_line}"): '), message
    assert "; expected " in message, message


# --- loading -------------------------------------------------------------------------------------


def test_missing_notebook_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="notebook not found: .*nope.ipynb"):
        parse_path(tmp_path / "nope.ipynb")


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("a.ipynb", "{not json", "not valid JSON"),
        ("b.ipynb", json.dumps({"metadata": {}, "nbformat": 4}), "no 'cells' list"),
        ("c.ipynb", json.dumps([1, 2]), "not an object"),
        ("d.ipynb", json.dumps({"cells": [], "nbformat": 3}), "nbformat 3"),
        ("e.py", "x = 1\n", "ends in '.py'"),
    ],
)
def test_not_a_notebook(tmp_path, name, content, detail):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InvalidSpecError) as info:
        load_notebook(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a Jupyter notebook (.ipynb, nbformat 4): ")
    assert detail in message


def test_directory_is_not_a_notebook(tmp_path):
    folder = tmp_path / "dir.ipynb"
    folder.mkdir()
    with pytest.raises(InvalidSpecError, match="is not a Jupyter notebook.*a directory"):
        load_notebook(folder)


def test_spec_basics(tmp_path):
    spec = parse(
        tmp_path,
        md("# Title"),
        code("x = 1", tags=["step:one"], id="c-1"),
        name="churn",
        kernel="py311",
    )
    assert spec.name == "churn"
    assert spec.path.endswith("churn.ipynb")
    assert spec.kernel == "py311"
    (cell,) = spec.step("one").cells
    assert (cell.index, cell.id, cell.source) == (1, "c-1", "x = 1")  # markdown counted
    assert PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_parse_notebook_defaults_the_name_to_the_file_stem():
    spec = parse_notebook(notebook(code("x = 1")), path="/a/b/report.ipynb")
    assert spec.name == "report"
    assert parse_notebook(notebook(code("x = 1")), path="x.ipynb", name="n").name == "n"


# --- marking styles ------------------------------------------------------------------------------


def test_metadata_marks(tmp_path):
    spec = parse(
        tmp_path,
        code("import math", mlplat={"role": "imports"}),
        code("def sq(v):\n    return v * v", mlplat={"role": "functions"}),
        code("n = 3", mlplat={"role": "parameters"}),
        code("data = list(range(n))", mlplat={"step": "load"}),
        code("print('debug')", mlplat={"role": "skip"}),
        code(
            "total = sum(sq(v) for v in data)",
            mlplat={
                "step": "train",
                "after": ["load"],
                "gpu": 1,
                "cache": False,
                "retries": 2,
                "timeout": 60,
                "kernel": "gpu-py",
                "env": {"SEED": "1"},
                "threads": 4,
            },
        ),
        code("score = math.sqrt(total)", mlplat={"step": "score"}),
        code("score", mlplat={"role": "metrics"}),
    )
    assert spec.step_names == ("load", "train", "score")
    assert [c.source for c in spec.imports] == ["import math"]
    assert [c.index for c in spec.functions] == [1]
    assert [p.name for p in spec.parameters] == ["n"]
    train = spec.step("train")
    assert (train.gpu, train.cache, train.retries, train.timeout) == (1, False, 2, 60.0)
    assert (train.kernel, train.env, train.threads) == ("gpu-py", {"SEED": "1"}, 4)
    assert train.after == ("load",)
    assert train.inputs == {"data": "load"}
    assert spec.step("score").metrics == ("score",)
    assert all("debug" not in s.source for s in spec.steps)
    default = spec.step("load")
    assert (default.gpu, default.cache, default.retries, default.timeout) == (0, True, 0, None)


def test_kale_tags(tmp_path):
    spec = parse(
        tmp_path,
        code("import os", tags=["imports"]),
        code("def helper():\n    return 1", tags=["functions"]),
        code("epochs = 5\nlr = 0.1", tags=["pipeline-parameters"]),
        code("raw = [1, 2, 3]", tags=["block:load"]),
        code("print(raw)", tags=["skip"]),
        code("clean = [r * lr for r in raw]", tags=["step:prep", "prev:load", "cache:disabled"]),
        code("model = sum(clean) * epochs", tags=["step:train", "limit:nvidia.com/gpu:2"]),
        code("acc = model / 10", tags=["step:evaluate", "prev:prep", "prev:train"]),
        code("print(acc)", tags=["pipeline-metrics"]),
    )
    assert spec.step_names == ("load", "prep", "train", "evaluate")
    assert [c.source for c in spec.imports] == ["import os"]
    assert [c.index for c in spec.functions] == [1]
    assert {p.name: p.default for p in spec.parameters} == {"epochs": 5, "lr": 0.1}
    assert spec.step("prep").cache is False
    assert spec.step("prep").after == ("load",)
    assert spec.step("train").gpu == 2
    assert spec.step("evaluate").after == ("prep", "train")
    assert spec.step("evaluate").metrics == ("acc",)
    assert "print(raw)" not in spec.step("load").source


def test_papermill_parameters_tag(tmp_path):
    spec = parse(
        tmp_path,
        code(
            "alpha: float = 0.5\nname = 'rf'\nlayers = [1, 2]\nseed = int('3')", tags=["parameters"]
        ),
        code("out = alpha * len(name)", tags=["step:fit"]),
    )
    params = {p.name: p for p in spec.parameters}
    assert (params["alpha"].default, params["alpha"].type_name) == (0.5, "float")
    assert (params["name"].source, params["name"].default) == ("'rf'", "rf")
    assert params["layers"].default == [1, 2]
    assert (params["seed"].literal, params["seed"].default, params["seed"].source) == (
        False,
        None,
        "int('3')",
    )
    assert spec.step("fit").params == ("alpha", "name")


def test_tags_that_are_not_ours_are_ignored(tmp_path):
    spec = parse(tmp_path, code("x = 1", tags=["hide-input", "remove_cell", "step:a", "steps"]))
    assert spec.step_names == ("a",)


def test_kale_empty_block_tag_is_ignored(tmp_path):
    spec = parse(tmp_path, code("x = 1", tags=["step:a"]), code("y = x", tags=["block:"]))
    assert [c.source for c in spec.step("a").cells] == ["x = 1", "y = x"]


# --- step spans ----------------------------------------------------------------------------------


def test_step_spans_unmarked_cells_until_next_mark(tmp_path):
    spec = parse(
        tmp_path,
        code("a = 1", tags=["step:one"]),
        md("notes"),
        code("b = a + 1"),
        code("   \n"),
        code("c = b", tags=["step:two"]),
        code("d = c"),
    )
    assert [c.index for c in spec.step("one").cells] == [0, 2]
    assert [c.index for c in spec.step("two").cells] == [4, 5]


def test_skip_cell_is_dropped_without_ending_the_step(tmp_path):
    spec = parse(
        tmp_path,
        code("a = 1", tags=["step:one"]),
        code("plot(a)", tags=["skip"]),
        code("b = a"),
    )
    assert [c.index for c in spec.step("one").cells] == [0, 2]


def test_cells_before_the_first_step_form_start(tmp_path):
    spec = parse(
        tmp_path,
        code("import json", tags=["imports"]),
        code("raw = json.loads('[1]')"),
        code("k = 2", tags=["pipeline-parameters"]),
        code("more = raw * k"),
        code("out = more", tags=["step:use"]),
    )
    assert spec.step_names == ("start", "use")
    assert [c.index for c in spec.step("start").cells] == [1, 3]
    assert spec.step("use").inputs == {"more": "start"}
    assert spec.step("start").outputs == ("more",)


def test_notebook_without_step_marks_is_one_step_named_main(tmp_path):
    spec = parse(
        tmp_path,
        code("import json", tags=["imports"]),
        code("n = 2", tags=["parameters"]),
        code("x = json.dumps(n)"),
        md("text"),
        code("y = len(x)"),
        code("y", tags=["pipeline-metrics"]),
    )
    assert spec.step_names == ("main",)
    main = spec.step("main")
    assert [c.index for c in main.cells] == [2, 4]
    assert main.params == ("n",)
    assert main.metrics == ("y",)
    assert main.upstream == ()


def test_repeating_a_step_tag_extends_the_earlier_step(tmp_path):
    spec = parse(
        tmp_path,
        code("a = 1", tags=["step:load"]),
        code("b = a * 2", tags=["step:other"]),
        code("c = 3", tags=["step:load"]),
        code("d = c + 1"),
    )
    assert spec.step_names == ("load", "other")
    assert [c.index for c in spec.step("load").cells] == [0, 2, 3]
    assert [c.index for c in spec.step("other").cells] == [1]


# --- versions ------------------------------------------------------------------------------------


def _steps(tmp_path, load_src: str, train_src: str) -> PipelineSpec:
    return parse(
        tmp_path,
        code(load_src, tags=["step:load"]),
        code(train_src, tags=["step:train"]),
    )


def test_comment_and_whitespace_edits_keep_the_version(tmp_path):
    before = _steps(tmp_path, "df = [1, 2]", "m = sum(df)")
    after = _steps(tmp_path, "# load the data\n\ndf = [1,  2]   # inline\n", "m = sum( df )\n\n")
    for name in ("load", "train"):
        assert before.step(name).cells[0].normalized == after.step(name).cells[0].normalized
        assert before.step(name).code_hash == after.step(name).code_hash
        assert before.step(name).cells[0].source != after.step(name).cells[0].source


def test_code_edits_change_the_version(tmp_path):
    before = _steps(tmp_path, "df = [1, 2]", "m = sum(df)")
    after = _steps(tmp_path, "df = [1, 3]", "m = sum(df)")
    assert before.step("load").code_hash != after.step("load").code_hash
    assert before.step("train").code_hash == after.step("train").code_hash


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        (["step:"], "has no step name"),
        (["step"], "has no step name"),
        (["step:bad name"], "bad step name 'bad name'"),
        (["block:9lives"], "bad step name '9lives'"),
        (["step:a", "prev:"], "has no step name"),
        (["step:a", "cache:maybe"], "unknown tag 'cache:maybe'"),
        (["step:a", "limit:nvidia.com/gpu:x"], "unknown tag 'limit:nvidia.com/gpu:x'"),
        (["step:a", "limit:foo:1"], "unknown tag 'limit:foo:1'"),
        (["pipeline-parameter"], "unknown tag 'pipeline-parameter'"),
    ],
)
def test_ill_formed_tags(tmp_path, tags, fragment):
    message = parse_error(tmp_path, md("intro"), code("df = load()\nx = 1", tags=tags))
    assert_names_cell(message, 1, "df = load()")
    assert fragment in message


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"gpu": -1}, "gpu to be a non-negative integer"),
        ({"gpu": True}, "gpu to be a non-negative integer"),
        ({"retries": 1.5}, "retries to be a non-negative integer"),
        ({"timeout": 0}, "timeout to be a positive number"),
        ({"timeout": "1h"}, "timeout to be a positive number"),
        ({"threads": 0}, "threads to be a positive integer"),
        ({"env": {"A": 1}}, "env to be an object of string names to string values"),
        ({"cache": "no"}, "cache to be true or false"),
        ({"after": "load"}, "a list of step names"),
        ({"inputs": "df"}, "a list of variable names"),
        ({"gpus": 1}, "unknown key 'gpus'"),
        ({"role": "setup"}, "metadata.mlplat.role is 'setup'"),
    ],
)
def test_bad_option_values(tmp_path, options, fragment):
    message = parse_error(tmp_path, code("x = 1", mlplat={"step": "a", **options}))
    assert_names_cell(message, 0, "x = 1")
    assert fragment in message


def test_two_step_names_on_one_cell(tmp_path):
    message = parse_error(tmp_path, code("x = 1", tags=["step:a", "step:b"]))
    assert_names_cell(message, 0, "x = 1")
    assert "two step names" in message
    message = parse_error(tmp_path, code("x = 1", tags=["step:a"], mlplat={"step": "b"}))
    assert "two step names on one cell: 'a', 'b'" in message


def test_same_name_in_tag_and_metadata_is_one_name(tmp_path):
    spec = parse(tmp_path, code("x = 1", tags=["step:a"], mlplat={"step": "a", "gpu": 1}))
    assert spec.step("a").gpu == 1


def test_tag_and_metadata_options_must_agree(tmp_path):
    message = parse_error(
        tmp_path, code("x = 1", tags=["step:a", "cache:disabled"], mlplat={"cache": True})
    )
    assert_names_cell(message, 0, "x = 1")
    assert "cache is set twice" in message


def test_repeated_step_with_other_options(tmp_path):
    message = parse_error(
        tmp_path,
        code("x = 1", mlplat={"step": "a", "gpu": 1}),
        code("y = 2", tags=["step:b"]),
        code("z = 3", mlplat={"step": "a", "gpu": 2}),
    )
    assert_names_cell(message, 2, "z = 3")
    assert "cell 0 gives gpu=1" in message


def test_step_and_role_on_one_cell(tmp_path):
    message = parse_error(tmp_path, code("import os", tags=["imports", "step:a"]))
    assert_names_cell(message, 0, "import os")
    assert "both as step 'a' and as 'imports'" in message


def test_step_options_without_a_step(tmp_path):
    message = parse_error(tmp_path, code("y = 1", tags=["cache:disabled"]))
    assert_names_cell(message, 0, "y = 1")
    assert "does not start a step" in message
    message = parse_error(tmp_path, code("y = 1", tags=["prev:a"]))
    assert "after/prev:" in message


def test_parameters_cell_accepts_only_assignments(tmp_path):
    message = parse_error(
        tmp_path,
        code("n = 1\nprint(n)", tags=["parameters"]),
        code("x = n", tags=["step:a"]),
    )
    assert_names_cell(message, 0, "n = 1")
    assert "line 2 of a parameters cell is not an assignment: print(n)" in message


def test_syntax_error_names_the_cell_and_line(tmp_path):
    message = parse_error(
        tmp_path,
        code("x = 1", tags=["step:a"]),
        code("%time x\ny = (1,\n", tags=["step:b"]),
    )
    assert_names_cell(message, 1, "%time x")
    assert "invalid Python at line 2" in message


def test_skipped_cell_may_hold_anything(tmp_path):
    spec = parse(
        tmp_path, code("x = 1", tags=["step:a"]), code("this is not (python", tags=["skip"])
    )
    assert spec.step_names == ("a",)


def test_unmarked_cell_after_a_section_that_ended_a_step(tmp_path):
    message = parse_error(
        tmp_path,
        code("x = 1", tags=["step:a"]),
        code("import os", tags=["imports"]),
        code("y = x"),
    )
    assert_names_cell(message, 2, "y = x")
    assert "follows the imports cell 1, which ends step 'a'" in message


# --- speed ---------------------------------------------------------------------------------------


def test_parsing_a_40_cell_notebook_is_fast(tmp_path):
    cells = [code("import math", tags=["imports"]), code("n = 10", tags=["parameters"])]
    for i in range(38):
        src = (
            f"# step {i}\nv{i} = [math.sqrt(j) * n for j in range(100)]\n"
            f"def f{i}(a):\n    return a + {i}\n" + (f"w{i} = v{i - 1}[0] + f{i}(1)\n" if i else "")
        )
        cells.append(code(src, tags=[f"step:s{i}"] if i % 2 == 0 else []))
    path = write(tmp_path, "big", notebook(*cells))
    start = time.perf_counter()
    spec = parse_path(path)
    elapsed = time.perf_counter() - start
    assert len(spec.steps) == 19
    assert elapsed < 2.0, f"parsing 40 cells took {elapsed:.3f} s"
