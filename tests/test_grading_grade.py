"""`llmcourse grade`: what it accepts, what it prints, and the process helpers under it."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time

import psutil
import pytest
from grading_fixtures.notebooks import (
    LESSON_99,
    MAX_SCORE,
    MEAN_SQUARE,
    NORMALIZE,
    SOLUTION_99,
    code_cell,
    leftovers,
    mark_processes,
    solution_cells,
    write_notebook,
)

from llmcourse import cli
from llmcourse.grading import grade
from llmcourse.grading.grade import GradeOptions, grade_notebooks
from llmcourse.grading.processes import kill_tree, memory_limited
from llmcourse.grading.progress import ProgressStore

FIXTURE = ["--exercises", str(LESSON_99)]


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: d / "nothing.ipynb", [], "does not exist"),
        (lambda d: d / "notes.txt", [], "is not a notebook (.ipynb)"),
        (lambda d: d / "homework.ipynb", [], "cannot tell the lesson of homework.ipynb"),
        (lambda d: d / "97_other.ipynb", [], "Lesson 97 has no graded exercises"),
        (lambda d: d / "99_fine.ipynb", ["--lesson", "3"], "--lesson takes two digits"),
        (lambda d: d / "99_fine.ipynb", ["--jobs", "0"], "--jobs must be at least 1"),
        (lambda d: d / "99_fine.ipynb", ["--timeout", "-1"], "must be positive"),
        (lambda d: d / "99_fine.ipynb", ["--exercises", "nope.py"], "must be a .py file"),
        (lambda d: d / "99_fine.ipynb", ["--seed", "-1"], "--seed must be a non-negative"),
        (lambda d: d / "99_fine.ipynb", ["--memory-mb", "1024"], "must exceed the 2048 MiB"),
        (lambda d: d / "empty", [], "No gradable notebooks"),
    ],
)
def test_misuse_exits_2_with_a_message(tmp_path, capsys, make, args, message):
    target = make(tmp_path)
    if target.name == "empty":
        target.mkdir()
    elif target.name != "nothing.ipynb":
        target.write_text("{}")
    assert cli.main(["grade", *FIXTURE, *args, str(target)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_folder_of_submissions_gives_a_table_json_and_csv(tmp_path, capsys):
    folder = tmp_path / "submissions"
    (folder / "alice").mkdir(parents=True)
    (folder / "bob" / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copy(SOLUTION_99, folder / "alice" / "99_fixture.ipynb")
    cells = solution_cells()
    cells[MEAN_SQUARE]["source"] = "def mean_square(values):\n    return 0.0"
    write_notebook(folder / "bob" / "99_fixture.ipynb", cells)
    shutil.copy(SOLUTION_99, folder / "bob" / ".ipynb_checkpoints" / "99_fixture.ipynb")
    (folder / "bob" / "scratch.ipynb").write_text("{}")

    assert cli.main(["grade", *FIXTURE, "--json", str(folder)]) == 0  # low scores are not errors
    out, err = capsys.readouterr()
    assert "skipping" in err and "scratch.ipynb" in err
    alice, bob = json.loads(out)["notebooks"]
    assert (alice["score"], alice["max_score"], alice["problems"]) == (MAX_SCORE, MAX_SCORE, []), (
        json.dumps(alice)
    )
    assert (bob["score"], bob["max_score"]) == (MAX_SCORE - 3, MAX_SCORE), json.dumps(bob)
    assert alice["seed"] != bob["seed"]  # fresh inputs for every notebook
    (lost,) = [e for e in bob["exercises"].values() if e["lost"]]
    assert lost["score"] == 0 and lost["max_score"] == 3
    assert (lost["lost"][0]["points"] == 2 and "values differ" in lost["lost"][0]["reason"]) or (
        "expected" in lost["lost"][0]["reason"]
    )
    assert lost["lost"][0]["hint"] == "Square every value, then average."

    with open(folder / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["score"], r["99.mean_square"], r["99.normalize"]) for r in rows] == [
        (str(MAX_SCORE), "3", "3"),
        (str(MAX_SCORE - 3), "0", "3"),
    ]
    best = ProgressStore().best()
    assert best["99.mean_square"].score == 3 and best["99.mean_square"].attempts == 2


@pytest.mark.slow
def test_one_notebook_prints_its_details_and_no_record_records_nothing(tmp_path, capsys):
    cells = solution_cells()
    cells[NORMALIZE]["source"] = "def normalize(vector):\n    return vector"
    notebook = write_notebook(tmp_path / "anything.ipynb", cells)
    assert cli.main(["grade", *FIXTURE, "--lesson", "99", "--no-record", str(notebook)]) == 0
    out = capsys.readouterr().out
    assert f"anything.ipynb: {MAX_SCORE - 3}/{MAX_SCORE} points" in out
    assert "normalize_gives_unit_length (-2): a random 5-d vector: values differ" in out
    assert "hint: Divide the vector by its Euclidean length." in out
    assert ProgressStore().best() == {}


def test_a_symlinked_grades_csv_is_refused_before_grading(tmp_path, capsys):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(SOLUTION_99, folder / "99_fixture.ipynb")
    precious = tmp_path / "precious.txt"
    precious.write_text("do not overwrite")
    (folder / "grades.csv").symlink_to(precious)
    assert cli.main(["grade", *FIXTURE, str(folder)]) == 2
    err = capsys.readouterr().err
    assert "grades.csv is a symbolic link" in err and "does not write through links" in err
    assert precious.read_text() == "do not overwrite"


def test_csv_files_are_written_atomically_and_never_through_a_link(tmp_path):
    from llmcourse.grading.files import UnsafeOutput, write_atomically

    target = tmp_path / "grades.csv"
    write_atomically(target, "a,b\n")
    write_atomically(target, "c,d\n")
    assert target.read_text() == "c,d\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "grades.csv"
    ]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(elsewhere)
    with pytest.raises(UnsafeOutput, match="symbolic link"):
        write_atomically(link, "x")
    assert elsewhere.read_text() == "keep"
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(UnsafeOutput, match="not a regular file"):
        write_atomically(tmp_path / "folder.csv", "x")


def test_memory_limited_commands_get_memory_error_not_the_oom_killer():
    probe = "import sys\ntry:\n    bytearray(2 * 2**30)\nexcept MemoryError:\n    sys.exit(42)"
    argv = memory_limited([sys.executable, "-c", probe], 512 * 2**20)
    assert subprocess.run(argv).returncode == 42
    assert memory_limited(["x"], None) == ["x"]
    # A soft limit below the ceiling: the process may raise it again, up to the ceiling.
    raise_it = (
        "import resource, sys\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
        "try:\n    bytearray(1024 * 2**20)\nexcept MemoryError:\n    pass\nelse:\n    sys.exit(1)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (hard, hard))\n"
        "bytearray(1024 * 2**20)\nsys.exit(42)"
    )
    argv = memory_limited([sys.executable, "-c", raise_it], 2048 * 2**20, 512 * 2**20)
    assert subprocess.run(argv).returncode == 42


def test_kill_tree_kills_children_and_the_process_group():
    parent = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    time.sleep(0.5)
    family = [parent.pid] + [c.pid for c in psutil.Process(parent.pid).children(recursive=True)]
    assert len(family) == 3
    kill_tree(parent.pid)
    parent.wait(timeout=5)
    assert not [pid for pid in family[1:] if psutil.pid_exists(pid)]


def test_kill_tree_leaves_a_reused_pid_alone():
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        created = psutil.Process(stranger.pid).create_time()
        kill_tree(stranger.pid, created - 1.0)  # "our" process with this pid started earlier
        assert stranger.poll() is None
        kill_tree(stranger.pid, created)  # kills, and reaps it too
        assert not psutil.pid_exists(stranger.pid)
    finally:
        stranger.kill()


@pytest.mark.slow
def test_a_worker_over_the_hard_limit_is_killed_with_its_kernel(tmp_path, monkeypatch):
    marker = mark_processes(monkeypatch)
    options = GradeOptions(
        cell_timeout=300, timeout=60, exercise_files=(str(LESSON_99),), max_restarts=0
    )
    tests = 8  # of 3 s each in the fixture; hard limit = timeout + tests + kernels + slack = 8 s
    monkeypatch.setattr(grade, "KERNEL_ALLOWANCE_S", 0.0)
    per_test = 3.0 + grade.TEST_GRACE_S + 5
    monkeypatch.setattr(grade, "WORKER_SLACK_S", 8.0 - 60.0 - tests * per_test)
    cells = solution_cells()
    cells.insert(5, code_cell("import time\ntime.sleep(600)"))
    notebook = write_notebook(tmp_path / "99_sleepy.ipynb", cells)
    (result,) = grade_notebooks([(notebook, "99")], options)
    assert result.problems == ["grading was stopped at the hard limit of 8 s"]
    assert result.score == 0 and {o.status for o in result.outcomes} == {"not run"}
    assert leftovers(marker) == []
