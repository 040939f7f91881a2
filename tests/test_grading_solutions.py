"""Every solution notebook grades full marks; every generated exercise grades 0 without crashing.

Runs over whatever ``solutions/*.ipynb`` exist (none is fine), and over the grader's own
fixture solution, generated into an exercise by ``tools/make_exercises.py`` first, so the whole
chain (generator, worker, kernel, tests) is proven even before the course has solutions.
Seconds per notebook graded go to ``test-artifacts/grade_times.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from grading_fixtures.notebooks import LESSON_99, ROOT, SOLUTION_99

from llmcourse.grading.evaluate import NOT_RUN, TIMED_OUT
from llmcourse.grading.grade import LESSON_PREFIX, GradeOptions, NotebookGrade, grade_notebooks

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
TIMES = ROOT / "test-artifacts" / "grade_times.json"
# What grading an exercise may report about its cells: stubs raise, and what uses them fails.
EXPECTED_IN_EXERCISES = ("raised NotImplementedError", "raised NameError")


def record_time(grade: NotebookGrade) -> None:
    TIMES.parent.mkdir(exist_ok=True)
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    path = Path(grade.path)
    times[f"{path.parent.name}/{path.name}"] = round(grade.seconds, 1)
    TIMES.write_text(json.dumps(times, indent=2, sort_keys=True))
    print(f"{grade.path}: {grade.score}/{grade.max_score} in {grade.seconds:.1f} s")


def grade_pair(solution: Path, exercise: Path, exercise_files: tuple[str, ...] = ()) -> None:
    lesson = LESSON_PREFIX.match(solution.name).group(1)  # "03", "10b"
    options = GradeOptions(exercise_files=exercise_files)
    solved, blank = grade_notebooks([(solution, lesson), (exercise, lesson)], options)
    for grade in (solved, blank):
        record_time(grade)
    reasons = [o.message for o in solved.outcomes if not o.passed]
    assert solved.max_score > 0
    assert solved.score == solved.max_score, reasons
    assert solved.problems == []  # a solution runs top to bottom without an error
    assert (blank.score, blank.max_score) == (0, solved.max_score)
    assert not [o for o in blank.outcomes if o.status in (NOT_RUN, TIMED_OUT)], blank.outcomes
    unexpected = [p for p in blank.problems if not any(e in p for e in EXPECTED_IN_EXERCISES)]
    assert unexpected == []


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_grades_full_marks_and_its_exercise_zero(solution):
    exercise = ROOT / "exercises" / solution.name
    assert exercise.exists(), f"{exercise} is missing: run python tools/make_exercises.py"
    grade_pair(solution, exercise)


@pytest.mark.slow
@pytest.mark.notebooks
def test_the_fixture_solution_and_its_generated_exercise(tmp_path):
    tool = ROOT / "tools" / "make_exercises.py"
    made = subprocess.run(
        [
            sys.executable,
            str(tool),
            "--solutions",
            str(SOLUTION_99.parent),
            "--exercises",
            tmp_path,
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    grade_pair(SOLUTION_99, tmp_path / SOLUTION_99.name, (str(LESSON_99),))
