"""tools/make_exercises.py: exercises/ generated from solutions/, and kept fresh."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from grading_fixtures.notebooks import ROOT, SOLUTION_99

TOOL = ROOT / "tools" / "make_exercises.py"


@pytest.fixture(scope="module")
def make_exercises():
    sys.path.insert(0, str(TOOL.parent))  # the tool imports its sibling strip_notebooks
    try:
        return importlib.import_module("make_exercises")
    finally:
        sys.path.remove(str(TOOL.parent))


def run_tool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True
    )


def test_exercises_folder_is_up_to_date():
    result = run_tool("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_answer_becomes_a_bare_stub(make_exercises):
    source = (
        "import math\n"
        "\n"
        "def area(radius):\n"
        '    """Area of a circle."""\n'
        "    ### BEGIN SOLUTION\n"
        "    return math.pi * radius**2\n"
        "    ### END SOLUTION\n"
        "\n"
        "### BEGIN SOLUTION\n"
        "answer = 42\n"
        "### END SOLUTION"
    )
    assert make_exercises.stub_source(source, "cell") == (
        "import math\n"
        "\n"
        "def area(radius):\n"
        '    """Area of a circle."""\n'
        '    raise NotImplementedError("Replace this with your code for area().")\n'
        "\n"
        'raise NotImplementedError("Replace this with your answer.")'
    )
    assert make_exercises.stub_source("x = 1", "cell") == "x = 1"  # no markers: unchanged


def test_a_stub_too_long_for_one_line_is_wrapped_as_the_formatter_would(make_exercises):
    name = "duplicate_ngram_character_fraction_of_the_whole_text"
    source = f"def {name}(text):\n    ### BEGIN SOLUTION\n    ### END SOLUTION"
    stubbed = make_exercises.stub_source(source, "cell")
    assert stubbed.split("\n")[1:] == [
        "    raise NotImplementedError(",
        f'        "Replace this with your code for {name}()."',
        "    )",
    ]
    ruff = Path(sys.executable).parent / "ruff"
    formatted = subprocess.run(
        [str(ruff), "format", "-"], input=stubbed, cwd=ROOT, capture_output=True, text=True
    )
    assert formatted.stdout == stubbed + "\n"


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        (
            "def f():\n    # Hint: return one\n    ### BEGIN SOLUTION\n    return 1\n"
            "    ### END SOLUTION",
            "gives the answer away",
        ),
        ("### BEGIN SOLUTION\nx = 1", "has no ### END SOLUTION"),
        ("x = 1\n### END SOLUTION", "without ### BEGIN SOLUTION"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n", "inside another"),
        ("## BEGIN SOLUTION\nx = 1", "write the marker as"),
    ],
)
def test_malformed_solutions_are_reported_with_their_place(make_exercises, source, complaint):
    with pytest.raises(make_exercises.SolutionFormatError, match="nb, cell 3, line") as error:
        make_exercises.stub_source(source, "nb, cell 3")
    assert complaint in str(error.value)


def test_a_solution_line_shown_outside_the_answers_is_a_leak(tmp_path, make_exercises):
    notebook = json.loads(SOLUTION_99.read_text())
    answer = "values = np.asarray(values, dtype=float)"
    assert make_exercises.leaked_lines(notebook, make_exercises.make_exercise(notebook, "nb")) == []
    notebook["cells"].append(
        {"cell_type": "markdown", "id": "leak", "metadata": {}, "source": f"Try `{answer}`."}
    )
    with pytest.raises(make_exercises.SolutionFormatError, match="1 solution line"):
        make_exercises.make_exercise(notebook, "nb")
    short = json.loads(SOLUTION_99.read_text())  # a short line ("return counts") is no leak
    short["cells"].append(
        {"cell_type": "markdown", "id": "s", "metadata": {}, "source": "return counts"}
    )
    make_exercises.make_exercise(short, "nb")


def test_every_committed_exercise_hides_its_solution_lines(make_exercises):
    for solution in sorted((ROOT / "solutions").glob("*.ipynb")):
        exercise = json.loads((ROOT / "exercises" / solution.name).read_text())
        assert make_exercises.leaked_lines(json.loads(solution.read_text()), exercise) == [], (
            solution
        )


def test_a_solution_without_any_answer_is_rejected(tmp_path):
    notebook = json.loads(SOLUTION_99.read_text())
    for cell in notebook["cells"]:
        cell["source"] = "x = 1"
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "99_empty.ipynb").write_text(json.dumps(notebook))
    result = run_tool("--solutions", solutions, "--exercises", tmp_path / "exercises")
    assert result.returncode == 2 and "no ### BEGIN SOLUTION" in result.stderr


def test_generate_check_and_fix_a_stale_folder(tmp_path):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    shutil.copy(SOLUTION_99, solutions)
    folders = ("--solutions", solutions, "--exercises", exercises)

    missing = run_tool("--check", *folders)
    assert missing.returncode == 1 and "stale: " in missing.stdout
    assert run_tool(*folders).returncode == 0
    assert run_tool("--check", *folders).returncode == 0
    generated = exercises / "99_fixture.ipynb"
    first = generated.read_bytes()

    notebook = json.loads(first)
    notebook["cells"][4]["source"] = "def mean_square(values):\n    return 0"  # a hand edit
    generated.write_text(json.dumps(notebook))
    (exercises / "99_orphan.ipynb").write_text(json.dumps(notebook))
    stale = run_tool("--check", *folders)
    assert stale.returncode == 1
    assert "stale: " in stale.stdout and "orphan: " in stale.stdout
    assert run_tool(*folders).returncode == 0
    assert generated.read_bytes() == first  # regenerated byte for byte
    assert not (exercises / "99_orphan.ipynb").exists()


def test_generated_notebooks_are_clean_and_lint_free(tmp_path):
    assert run_tool("--solutions", SOLUTION_99.parent, "--exercises", tmp_path).returncode == 0
    generated = tmp_path / "99_fixture.ipynb"
    notebook = json.loads(generated.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "llmcourse"
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    sources = "".join("".join(c["source"]) for c in code)
    assert "BEGIN SOLUTION" not in sources and "np.mean" not in sources
    assert sources.count("raise NotImplementedError") == 8 and "# Hint:" not in sources
    ruff = Path(sys.executable).parent / "ruff"
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [str(ruff), *command, "--stdin-filename", "exercises/99_fixture.ipynb"],
            input=generated.read_text(),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_no_hint_spells_a_solution_line(make_exercises):
    from llmcourse.grading.grade import LESSON_PREFIX
    from llmcourse.grading.spec import tests_for

    for solution in sorted((ROOT / "solutions").glob("*.ipynb")):
        notebook = json.loads(solution.read_text())
        answers = {
            line
            for cell in notebook["cells"]
            if cell["cell_type"] == "code"
            for line in make_exercises.solution_lines("".join(cell["source"]))
            if len(line) >= make_exercises.LEAK_CHARS
        }
        lesson = LESSON_PREFIX.match(solution.name).group(1)
        hints = " ".join(make_exercises.normalized(test.hint) for test in tests_for(lesson))
        assert [line for line in answers if line in hints] == [], solution.name
