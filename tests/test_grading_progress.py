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
from llmcourse.grading import api, progress
from llmcourse.grading.api import load_exercise_file
from llmcourse.grading.progress import (
    ProgressStore,
    lesson_progress,
    record_quietly,
    render_progress,
)


@pytest.fixture
def store(tmp_path):
    return ProgressStore(tmp_path / "progress.sqlite3")


def test_best_keeps_the_highest_score_and_counts_attempts(store):
    store.record([("03.rmsnorm", 1, 3), ("03.rope", 0, 2)], source="check")
    store.record([("03.rmsnorm", 3, 3)], source="grade", notebook="/x/03_a.ipynb")
    store.record([("03.rmsnorm", 2, 3)], source="check")
    best = store.best()
    assert (best["03.rmsnorm"].score, best["03.rmsnorm"].attempts) == (3, 3)
    assert (best["03.rope"].score, best["03.rope"].max_score) == (0, 2)
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_processes_writing_at_once_lose_nothing(store):
    writer = textwrap.dedent(
        f"""
        from llmcourse.grading.progress import ProgressStore
        store = ProgressStore({str(store.path)!r})
        for i in range(100):
            store.record([("03.rmsnorm", i % 4, 3)], source="check")
        """
    )
    store.best()  # create the file first, as the learner's first check() does
    writers = [subprocess.Popen([sys.executable, "-c", writer]) for _ in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert store.best()["03.rmsnorm"].attempts == 200


def test_a_file_that_is_not_a_database_is_moved_aside(store, capsys):
    store.path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    store.record([("03.rmsnorm", 2, 3)], source="check")
    assert "could not be read" in capsys.readouterr().err
    (aside,) = store.path.parent.glob("progress.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    assert store.best()["03.rmsnorm"].score == 2


def test_a_damaged_database_is_moved_aside(store, capsys):
    store.record([(f"03.exercise_{i}", 1, 1) for i in range(2000)], source="check")
    with sqlite3.connect(store.path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(store.path.read_bytes())
    data[4096 : 4096 * 4] = b"\xff" * (4096 * 3)  # scribble over pages 2-4
    store.path.write_bytes(bytes(data))
    store.record([("03.rmsnorm", 3, 3)], source="check")
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
    store.record([("99.mean_square", 3, 3), ("99.normalize", 2, 4)], source="check")
    (lesson,) = [p for p in lesson_progress(store) if p.lesson == "99"]
    assert lesson.max_points == {"99.mean_square": 3, "99.normalize": 3}
    assert lesson.points("99.normalize") == 2  # 2/4 recorded before the tests changed to 3 points
    assert (lesson.score, lesson.max_score, lesson.left) == (5, 6, ["99.normalize"])
    text = render_progress([lesson])
    assert "Lesson 99    5/6   points  1 of 2 exercises done" in text
    assert "left: 99.normalize (2/3)" in text
    assert text.endswith("Overall: 5/6 points; 1 exercises left.")


def test_a_lesson_whose_tests_do_not_import_is_reported_not_raised(store, monkeypatch):
    load_exercise_file(LESSON_99)

    def broken(selector):
        raise ImportError("cannot import name 'RMSNorm'")

    monkeypatch.setattr(progress, "tests_for", broken)
    (lesson,) = [p for p in lesson_progress(store) if p.lesson == "99"]
    assert "could not be loaded: ImportError: cannot import name 'RMSNorm'" in lesson.problem


def test_the_progress_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LLMCOURSE_HOME", str(tmp_path))
    monkeypatch.setenv(api.EXTRA_EXERCISES_ENV, str(LESSON_99))
    ProgressStore().record([("99.mean_square", 1, 3)], source="check")
    assert cli.main(["progress"]) == 0
    assert "left: 99.mean_square (1/3)" in capsys.readouterr().out
    assert cli.main(["progress", "--json"]) == 0
    (lesson,) = [p for p in json.loads(capsys.readouterr().out) if p["lesson"] == "99"]
    assert lesson["exercises"]["99.normalize"] == {"score": 0, "max_score": 3}
    assert lesson["left"] == ["99.mean_square", "99.normalize"]
