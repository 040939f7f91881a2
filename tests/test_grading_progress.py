"""The progress store: best scores, concurrent writers, corruption, and `llmcourse progress`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from grading_fixtures.notebooks import LESSON_99

from llmcourse import cli
from llmcourse.grading import progress, spec
from llmcourse.grading.progress import (
    ProgressStore,
    lesson_progress,
    record_quietly,
    render_progress,
)
from llmcourse.grading.spec import load_exercise_file


@pytest.fixture
def store(tmp_path):
    return ProgressStore(tmp_path / "progress.sqlite3")


def test_best_keeps_the_highest_score_and_counts_attempts(store):
    store.record([("03.rmsnorm", 1, 2), ("03.rope", 0, 3)], source="check")
    store.record([("03.rmsnorm", 2, 2)], source="grade", notebook="/x/03_a.ipynb")
    store.record([("03.rmsnorm", 1, 2)], source="check")
    best = store.best()
    assert (best["03.rmsnorm"].score, best["03.rmsnorm"].attempts) == (2, 3)
    assert (best["03.rope"].score, best["03.rope"].max_score) == (0, 3)
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_processes_writing_at_once_lose_nothing(store):
    writer = textwrap.dedent(
        f"""
        from llmcourse.grading.progress import ProgressStore
        store = ProgressStore({str(store.path)!r})
        for i in range(100):
            store.record([("03.rmsnorm", i % 3, 2)], source="check")
        """
    )
    store.best()  # create the file first, as the learner's first check() does
    writers = [subprocess.Popen([sys.executable, "-c", writer]) for _ in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert store.best()["03.rmsnorm"].attempts == 200


def test_a_file_that_is_not_a_database_is_moved_aside(store, capsys):
    store.path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    store.record([("03.rmsnorm", 2, 2)], source="check")
    assert "could not be read" in capsys.readouterr().err
    (aside,) = store.path.parent.glob("progress.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    assert store.best()["03.rmsnorm"].score == 2


def test_a_damaged_database_is_moved_aside(store, capsys):
    store.record([("03.rope", i % 2, 3) for i in range(2000)], source="check")
    with sqlite3.connect(store.path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(store.path.read_bytes())
    data[4096 : 4096 * 4] = b"\xff" * (4096 * 3)  # scribble over pages 2-4
    store.path.write_bytes(bytes(data))
    store.record([("03.rmsnorm", 2, 2)], source="check")
    assert "could not be read" in capsys.readouterr().err
    assert list(store.best()) == ["03.rmsnorm"]


def test_a_locked_database_is_not_mistaken_for_corruption(store):
    store.record([("03.rmsnorm", 1, 3)], source="check")
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        quick = ProgressStore(store.path, busy_timeout=0.2)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            quick._with_connection(lambda c: c.execute("BEGIN IMMEDIATE"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(store.path.parent.glob("*.corrupt-*"))


def test_recording_never_breaks_a_check(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LLMCOURSE_HOME", str(blocker))
    record_quietly([("03.rmsnorm", 1, 3)], source="check")
    assert "Progress not saved" in capsys.readouterr().err


def test_progress_per_lesson_and_what_is_left(store, monkeypatch):
    load_exercise_file(LESSON_99)
    store.record([("99.mean_square", 3, 3), ("99.normalize", 2, 3)], source="check")
    everything = lesson_progress(store)
    (lesson,) = [p for p in everything.lessons if p.lesson == "99"]
    assert lesson.max_points == {
        "99.mean_square": 3,
        "99.normalize": 3,
        "99.clip": 1,
        "99.word_count": 1,
        "99.running_mean": 2,
        "99.threshold": 2,
    }
    assert lesson.points("99.normalize") == 2
    assert (lesson.score, lesson.max_score) == (5, 12)
    assert lesson.left == [
        "99.normalize",
        "99.clip",
        "99.word_count",
        "99.running_mean",
        "99.threshold",
    ]
    text = render_progress(progress.Progress([lesson]))
    assert "Lesson 99    5/12  points  1 of 6 exercises done" in text
    assert "left: 99.normalize (2/3)" in text and "left: 99.clip (not tried)" in text
    assert 'next: finish 99.normalize in exercises/99_*.ipynb, then check("99.normalize")' in text
    assert text.endswith("Overall: 5/12 points; 5 exercises left.")


def test_a_projects_latest_measurement_is_shown_beside_the_points(store):
    load_exercise_file(LESSON_99)
    accuracy = {"name": "accuracy on held-out points", "value": 0.7, "threshold": 0.9}
    store.record(
        [("99.threshold", 0, 2)], source="check", measurements=[("99.threshold", accuracy)]
    )
    better = {**accuracy, "value": 0.95, "higher_is_better": True}
    store.record([("99.threshold", 2, 2)], source="grade", measurements=[("99.threshold", better)])
    (lesson,) = [p for p in lesson_progress(store).lessons if p.lesson == "99"]
    assert lesson.measured["99.threshold"]["value"] == 0.95  # the latest, from grade
    text = render_progress(progress.Progress([lesson]))
    assert "project 99.threshold: accuracy on held-out points 0.95 (needs ≥ 0.9; grade," in text
    assert lesson.to_dict()["next_step"].startswith("start 99.mean_square")
    done = progress.LessonProgress("98", {"98.a": 1}, {}, measured={})
    assert done.next_step == 'start 98.a in exercises/98_*.ipynb, then check("98.a")'


def test_implausible_rows_are_flagged_not_counted(store):
    """The learner owns the file: rows written around check() and llmcourse grade are listed,
    not counted (the score 7000/140, an unknown exercise, a run whose totals do not add up)."""
    load_exercise_file(LESSON_99)
    store.record([("99.mean_square", 1, 3)], source="check")
    store.record([("99.clip", 1, 1)], source="check")
    with sqlite3.connect(store.path) as connection:
        connection.executemany(
            "INSERT INTO results (exercise, score, max_score, source, notebook, recorded_at,"
            " run_id) VALUES (?, ?, ?, ?, NULL, ?, ?)",
            [
                ("99.mean_square", 7000, 140, "grade", "2024-01-01T00:00:00+00:00", None),
                ("99.mean_square", 3, 3, "grade", "2024-01-01T00:00:00+00:00", None),
                ("99.nonsense", 1, 1, "check", "2024-01-01T00:00:00+00:00", 99),
                ("99.normalize", 3, 3, "me", "2024-01-01T00:00:00+00:00", 99),
                ("99.normalize", 3, 3, "check", "2999-01-01T00:00:00+00:00", 99),
                ("99.normalize", "three", 3, "check", "2024-01-01T00:00:00+00:00", 99),
                ("99.normalize", 3, 3, "check", "2024-01-01T00:00:00+00:00", 2),
            ],
        )
    everything = lesson_progress(store)
    (lesson,) = [p for p in everything.lessons if p.lesson == "99"]
    assert lesson.points("99.mean_square") == 1 and lesson.points("99.normalize") == 0
    assert lesson.points("99.clip") == 0  # its run (2) was changed: its totals no longer add up
    reasons = "\n".join(everything.flagged)
    assert "99.mean_square is worth 3 points, not 140" in reasons
    assert "not part of a recorded run" in reasons
    assert "not an exercise of the course" in reasons
    assert "not by check() or llmcourse grade" in reasons and "recorded in the future" in reasons
    assert "scores must be whole numbers" in reasons and "its run's totals do not add up" in reasons
    assert len(everything.flagged) == 8
    text = render_progress(everything)
    assert "Not counted: 8 rows of the progress store are not plausible" in text
    assert "only `llmcourse grade` verdicts count" in text


def test_a_lesson_whose_tests_do_not_import_is_reported_not_raised(store, monkeypatch):
    load_exercise_file(LESSON_99)

    def broken(selector):
        raise ImportError("cannot import name 'RMSNorm'")

    monkeypatch.setattr(progress, "tests_for", broken)
    (lesson,) = [p for p in lesson_progress(store).lessons if p.lesson == "99"]
    assert "could not be loaded: ImportError: cannot import name 'RMSNorm'" in lesson.problem


def test_the_progress_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LLMCOURSE_HOME", str(tmp_path))
    monkeypatch.setenv(spec.EXTRA_EXERCISES_ENV, str(LESSON_99))
    ProgressStore().record([("99.mean_square", 1, 3)], source="check")
    assert cli.main(["progress"]) == 0
    assert "left: 99.mean_square (1/3)" in capsys.readouterr().out
    assert cli.main(["progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (lesson,) = [p for p in report["lessons"] if p["lesson"] == "99"]
    assert lesson["exercises"]["99.normalize"] == {"score": 0, "max_score": 3}
    assert lesson["left"][:2] == ["99.mean_square", "99.normalize"]
    assert report["flagged"] == []
