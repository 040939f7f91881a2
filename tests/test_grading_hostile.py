"""Notebooks that want a score they did not earn: each forgery scores what a blank notebook does.

The blank notebook is the lesson-99 fixture's generated exercise (every answer a stub: 0
points). Each case adds one forgery cell. Forgeries that do not rest on the source rules are
graded twice, the second time with those rules switched off, to show that the verdict holds
because it is computed in the grader's process on inputs drawn for this run, not because the
grader recognised the trick. Afterwards no process the notebook started may be left.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys

import numpy as np
import pytest
from grading_fixtures.notebooks import (
    LESSON_99,
    MAX_SCORE,
    ROOT,
    SOLUTION_99,
    code_cell,
    leftovers,
    mark_processes,
    write_notebook,
)

from llmcourse import cli
from llmcourse.grading import grade, spec, wire
from llmcourse.grading.evaluate import expected_outputs
from llmcourse.grading.grade import GradeOptions, NotebookGrade, grade_notebooks
from llmcourse.grading.progress import ProgressStore, lesson_progress
from llmcourse.grading.source import SourceReport
from llmcourse.grading.spec import load_exercise_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def blank_cells() -> list[dict]:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from make_exercises import make_exercise
    finally:
        sys.path.remove(str(ROOT / "tools"))
    notebook = make_exercise(json.loads(SOLUTION_99.read_text(encoding="utf-8")), "fixture")
    for cell in notebook["cells"]:
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    return notebook["cells"]


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_HOME", str(tmp_path / "home"))
    load_exercise_file(LESSON_99)


def graded(tmp_path, cells: list[dict], name: str, **options) -> NotebookGrade:
    notebook = write_notebook(tmp_path / f"99_{name}.ipynb", cells)
    # A fixed seed keeps these tests deterministic: a forged constant could, by a rare chance,
    # be a right answer for some seed (99.threshold's classes lie anywhere in [-1000, 1003]).
    settings = {
        "cell_timeout": 30.0,
        "timeout": 120.0,
        "exercise_files": (str(LESSON_99),),
        "seed": 2024,
    }
    (result,) = grade_notebooks([(notebook, "99")], GradeOptions(**{**settings, **options}))
    return result


def without_source_rules(monkeypatch) -> None:
    monkeypatch.setattr(grade, "check_source", lambda cells, exercises, folder: SourceReport())


PATCH_THE_GRADING_CODE = """
import llmcourse.grading.calls as calls
import llmcourse.grading.compare as compare
import llmcourse.grading.evaluate as evaluate
calls.run_cases = lambda test, answers, cases, seed: [{"returned": 0.0} for _ in cases]
compare.close = lambda *args, **kwargs: (lambda got, expected, case=None: None)
evaluate.judge = lambda *args, **kwargs: None
"""
PATCH_THE_DRIVER = """
import llmcourse.grading.driver as driver
def forged(request):
    return {"status": "returned", "outputs": [{"returned": 1.0} for _ in request["cases"]]}
driver._answer = forged
"""
PATCH_THE_REFERENCES = """
import sys
import numpy
for name, module in list(sys.modules.items()):
    if name.startswith("llmcourse_extra_exercises"):
        for attribute in dir(module):
            if attribute.startswith("_reference"):
                setattr(module, attribute, lambda *args, **kwargs: 0.0)
numpy.mean = lambda *args, **kwargs: 0.0
numpy.linalg.norm = lambda *args, **kwargs: 1.0
def mean_square(values):
    return 0.0
def normalize(vector):
    return vector
"""
WRITE_THE_OUTCOME_AND_KILL_THE_PARENT = """
import json, os, signal
import psutil
worker = psutil.Process(os.getppid())
spec_path = next(arg for arg in worker.cmdline() if arg.endswith("spec.json"))
spec = json.load(open(spec_path))
calls = {}
outcomes = []
for request in spec["requests"]:
    cases = json.load(open(request["path"]))["cases"]
    calls[request["key"]] = {"status": "returned", "nonce": request["nonce"],
                             "outputs": [{"returned": 1.0} for _ in cases]}
    exercise, test = request["key"].split("/")
    outcomes.append({"exercise": exercise, "test": test, "max_points": 3, "status": "passed"})
with open(spec["result_path"], "w") as out:
    json.dump({"calls": calls, "outcomes": outcomes, "problems": [], "grader_problem": ""}, out)
os.kill(worker.pid, signal.SIGKILL)
"""
HIDDEN_FROM_THE_SOURCE_RULES = "import base64\nexec(base64.b64decode({!r}).decode())".format(
    __import__("base64").b64encode(PATCH_THE_DRIVER.encode()).decode()
)
TAMPERING = {"patch_the_grading_code", "patch_the_driver", "forgery_hidden_in_exec"}
FORGERIES = {
    "patch_the_grading_code": PATCH_THE_GRADING_CODE,
    "patch_the_driver": PATCH_THE_DRIVER,
    "patch_the_package_references": PATCH_THE_REFERENCES,
    "write_the_outcome_and_kill_the_parent": WRITE_THE_OUTCOME_AND_KILL_THE_PARENT,
    "forgery_hidden_in_exec": HIDDEN_FROM_THE_SOURCE_RULES,
}


def test_the_blank_notebook_scores_zero(tmp_path, blank_cells):
    result = graded(tmp_path, blank_cells, "blank")
    assert (result.score, result.max_score) == (0, MAX_SCORE)


@pytest.mark.parametrize("rules", ["with source rules", "without source rules"])
@pytest.mark.parametrize("name", FORGERIES)
def test_a_forgery_scores_what_the_blank_notebook_scores(
    tmp_path, monkeypatch, blank_cells, name, rules
):
    marker = mark_processes(monkeypatch)
    if rules == "without source rules":
        without_source_rules(monkeypatch)
    result = graded(tmp_path, [*blank_cells, code_cell(FORGERIES[name])], name)
    reasons = result.problems + [o.message for o in result.outcomes]
    assert (result.score, result.max_score) == (0, MAX_SCORE), reasons
    if rules == "with source rules" and name in TAMPERING:
        assert any("grading cannot trust this notebook" in r for r in reasons), reasons
    assert leftovers(marker) == []


def test_replaying_recorded_outputs_fails_on_the_next_runs_inputs(tmp_path, blank_cells):
    """Outputs recorded from one run (seed 1) pass that run only: the grader's next seed draws
    other inputs, edge cases included in tests with random ones."""
    recorded: dict[str, dict[str, object]] = {}
    for test in spec.tests_for("99"):
        if test.exercise_id not in ("99.mean_square", "99.normalize", "99.clip", "99.word_count"):
            continue
        cases = test.draw_cases(1)
        for case, want in zip(cases, expected_outputs(test, cases, wire.Builder()), strict=True):
            key = json.dumps(np.asarray(case.args[0], dtype=object).tolist(), default=float)
            value = want.value.tolist() if isinstance(want.value, np.ndarray) else want.value
            recorded.setdefault(test.exercise.answers[0], {})[key] = value
    replay = f"""
import json
import numpy as np
RECORDED = json.loads({json.dumps(json.dumps(recorded))})
def _look_up(name, first):
    key = json.dumps(np.asarray(first, dtype=object).tolist(), default=float)
    return RECORDED[name][key]
def mean_square(values):
    return _look_up("mean_square", values)
def normalize(vector):
    return np.asarray(_look_up("normalize", vector))
def clip(values, low, high):
    return _look_up("clip", values)
def word_count(text):
    return _look_up("word_count", text)
"""
    cells = [*blank_cells, code_cell(replay)]
    same_run = graded(tmp_path, cells, "replay_same_seed", seed=1)
    assert same_run.score >= 6, [o.message for o in same_run.outcomes]  # the replay works…
    next_run = graded(tmp_path, cells, "replay_next_seed", seed=2)
    assert next_run.score == 0, [o.message for o in next_run.outcomes]  # …once


def test_aliasing_the_package_scores_zero_with_a_reason(tmp_path):
    cells = json.loads((ROOT / "exercises" / "03_llm_architecture.ipynb").read_text())["cells"]
    alias = "from llmcourse.nn.attention import scaled_dot_product_attention as attention"
    cells.append(code_cell(alias))
    notebook = write_notebook(tmp_path / "03_alias.ipynb", cells)
    (result,) = grade_notebooks([(notebook, "03")], GradeOptions(cell_timeout=60.0))
    assert result.score == 0
    (first, *_) = [o for o in result.outcomes if o.exercise == "03.attention"]
    assert first.status == "not your own"
    assert (
        "uses llmcourse.nn.attention.scaled_dot_product_attention, the package's own version"
        in first.message
    )
    assert "`attention` is imported from llmcourse.nn.attention" in first.message


def test_a_direct_write_to_the_progress_database(tmp_path, monkeypatch, blank_cells, capsys):
    store = ProgressStore()  # the learner's store ($LLMCOURSE_HOME of this test)
    store.record([("99.clip", 0, 1)], source="check")
    write = f"""
import sqlite3
with sqlite3.connect({str(store.path)!r}) as db:
    db.execute("INSERT INTO results (exercise, score, max_score, source, notebook, recorded_at)"
               " VALUES ('99.mean_square', 7000, 140, 'grade', NULL, '2024-05-01T00:00:00+00:00')")
    db.execute("INSERT INTO results (exercise, score, max_score, source, notebook, recorded_at)"
               " VALUES ('99.normalize', 3, 3, 'grade', NULL, '2024-05-01T00:00:00+00:00')")
"""
    result = graded(tmp_path, [*blank_cells, code_cell(write)], "database", seed=3)
    assert result.score == 0
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 3
    progress = lesson_progress(store)
    (lesson,) = [p for p in progress.lessons if p.lesson == "99"]
    assert lesson.score == 0 and len(progress.flagged) == 2
    assert cli.main(["progress"]) == 0
    text = capsys.readouterr().out
    assert "a score of 7000 out of 140 is impossible" in text or "worth 3 points, not 140" in text
    assert "not part of a recorded run" in text


def test_no_process_the_notebook_starts_outlives_grading(tmp_path, monkeypatch, blank_cells):
    marker = mark_processes(monkeypatch)
    survivors = f"""
import os, subprocess, sys
subprocess.Popen(["setsid", "sleep", "600"])  # a new session: not in the kernel's group
subprocess.Popen(["env", "-i", "setsid", sys.executable, "-c",
                  "import time; time.sleep(600)", {marker!r}])  # no environment marker either
if os.fork() == 0:  # a double fork: the grandchild is an orphan in a session of its own
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "601"])
    os._exit(0)
"""
    cells = [*blank_cells, code_cell(survivors)]
    result = graded(tmp_path, cells, "survivors")
    assert result.score == 0
    assert leftovers(marker) == []


def test_a_symlinked_output_is_refused(tmp_path, capsys):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(SOLUTION_99, folder / "99_fixture.ipynb")
    target = tmp_path / "someone_elses_file"
    target.write_text("precious")
    (folder / "grades.csv").symlink_to(target)
    code = cli.main(["grade", "--exercises", str(LESSON_99), "--no-record", str(folder)])
    assert code == 2 and "is a symbolic link" in capsys.readouterr().err
    assert target.read_text() == "precious"
