"""The learner's progress: every ``check()`` and ``llmcourse grade`` result, in one SQLite file.

The file is ``progress.sqlite3`` in ``llmcourse.utils.home_dir()`` (``$LLMCOURSE_HOME``
overrides). It runs in WAL mode and every write is one short ``BEGIN IMMEDIATE`` transaction
on a fresh connection with a busy timeout, so a notebook kernel and ``llmcourse grade`` writing at
the same moment both land. A file that is not a database (or is damaged) is renamed to
``progress.sqlite3.corrupt-<time>`` with a message, and a fresh store takes its place.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from llmcourse.grading.api import graded_lessons, tests_for
from llmcourse.grading.runner import describe_exception

DATABASE_NAME = "progress.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exercise TEXT NOT NULL,
    score INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    source TEXT NOT NULL,
    notebook TEXT,
    recorded_at TEXT NOT NULL
)
"""
T = TypeVar("T")


@dataclass(frozen=True)
class BestResult:
    """The best score recorded for one exercise, and when it was last worked on."""

    exercise: str
    score: int
    max_score: int
    attempts: int
    last_recorded: str


class ProgressStore:
    """Append-only log of results; read back as the best score per exercise."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 30.0) -> None:
        if path is None:
            # Imported here: llmcourse.utils brings in torch, which check() alone does not need.
            from llmcourse.utils.paths import home_dir

            path = home_dir() / DATABASE_NAME
        self.path = Path(path)
        self.busy_timeout = busy_timeout  # seconds to wait while another process writes

    def record(
        self,
        scores: Iterable[tuple[str, int, int]],
        *,
        source: str,
        notebook: str | None = None,
    ) -> None:
        """Append ``(exercise, score, max_score)`` rows from ``source`` ("check" or "grade")."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        rows = [(ex, int(score), int(top), source, notebook, now) for ex, score, top in scores]

        def write(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT INTO results (exercise, score, max_score, source, notebook, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            connection.execute("COMMIT")

        self._run(write)

    def best(self) -> dict[str, BestResult]:
        """Best result per exercise (highest score; ties go to the latest)."""

        def read(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(
                "SELECT exercise, score, max_score, n, last FROM ("
                "  SELECT exercise, score, max_score,"
                "    COUNT(*) OVER w AS n, MAX(recorded_at) OVER w AS last,"
                "    ROW_NUMBER() OVER (PARTITION BY exercise ORDER BY score DESC, id DESC) AS r"
                "  FROM results WINDOW w AS (PARTITION BY exercise)"
                ") WHERE r = 1"
            ).fetchall()

        return {row[0]: BestResult(*row) for row in self._run(read)}

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` on a fresh connection; a corrupt file is moved aside once."""
        try:
            return self._with_connection(operation)
        except sqlite3.DatabaseError as error:
            if not _is_corruption(error) or not self._still_corrupt():
                raise
            self._move_aside(error)
            return self._with_connection(operation)

    def _with_connection(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            return operation(connection)
        finally:
            connection.close()

    def _still_corrupt(self) -> bool:
        """Re-check on a new connection: another process may have replaced the file already."""

        def quick_check(connection: sqlite3.Connection) -> str:
            return connection.execute("PRAGMA quick_check").fetchone()[0]

        try:
            return self._with_connection(quick_check) != "ok"
        except sqlite3.DatabaseError as error:
            return _is_corruption(error)

    def _move_aside(self, error: sqlite3.DatabaseError) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{target}{suffix}"))
        print(
            f"[llmcourse] The progress database {self.path} could not be read ({error}). "
            f"It was moved to {target} and a new, empty one started; your notebooks are "
            "untouched, and re-running check() records your scores again.",
            file=sys.stderr,
        )


def _is_corruption(error: sqlite3.DatabaseError) -> bool:
    """Not a database, or a damaged one, as opposed to locked, read-only or a full disk."""
    code = getattr(error, "sqlite_errorname", None)  # Python >= 3.11
    if code is not None:
        return code in {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
    return type(error) is sqlite3.DatabaseError


def record_quietly(
    scores: Iterable[tuple[str, int, int]], *, source: str, notebook: str | None = None
) -> None:
    """Record, but never let a progress problem (read-only home, full disk) break grading."""
    try:
        ProgressStore().record(scores, source=source, notebook=notebook)
    except (sqlite3.Error, OSError) as error:
        print(f"[llmcourse] Progress not saved: {error}", file=sys.stderr)


@dataclass(frozen=True)
class LessonProgress:
    """Where the learner stands in one lesson: points now, and the exercises not yet full."""

    lesson: str
    max_points: dict[str, int]  # every exercise of the lesson -> its points today
    best: dict[str, BestResult]
    problem: str = ""  # set when the lesson's tests could not be loaded

    def points(self, exercise: str) -> int:
        """Best recorded score, rescaled if the exercise's tests changed since."""
        result = self.best.get(exercise)
        if result is None or result.max_score <= 0:
            return 0
        return round(self.max_points[exercise] * result.score / result.max_score)

    @property
    def score(self) -> int:
        return sum(self.points(exercise) for exercise in self.max_points)

    @property
    def max_score(self) -> int:
        return sum(self.max_points.values())

    @property
    def left(self) -> list[str]:
        return [ex for ex, top in self.max_points.items() if self.points(ex) < top]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lesson": self.lesson,
            "score": self.score,
            "max_score": self.max_score,
            "exercises": {
                ex: {"score": self.points(ex), "max_score": top}
                for ex, top in self.max_points.items()
            },
            "left": self.left,
            "problem": self.problem,
        }


def lesson_progress(store: ProgressStore | None = None) -> list[LessonProgress]:
    """Every graded lesson with the learner's best scores (exercises from the test modules)."""
    best = (store or ProgressStore()).best()
    lessons = []
    for lesson in graded_lessons():
        try:
            tests = tests_for(lesson)
        except Exception as error:  # one broken test module must not hide the other lessons
            problem = f"its tests could not be loaded: {describe_exception(error)}"
            lessons.append(LessonProgress(lesson, {}, {}, problem))
            continue
        max_points: dict[str, int] = {}
        for test in tests:
            max_points[test.exercise] = max_points.get(test.exercise, 0) + test.points
        mine = {ex: result for ex, result in best.items() if ex in max_points}
        lessons.append(LessonProgress(lesson, max_points, mine))
    return lessons


def render_progress(lessons: list[LessonProgress]) -> str:
    """The ``llmcourse progress`` report: points per lesson and what is left to do."""
    if not lessons:
        return "No lesson has graded exercises yet."
    lines = []
    for item in lessons:
        if item.problem:
            lines.append(f"Lesson {item.lesson}: {item.problem}")
            continue
        done = len(item.max_points) - len(item.left)
        lines.append(
            f"Lesson {item.lesson}  {item.score:>3}/{item.max_score:<3} points  "
            f"{done} of {len(item.max_points)} exercises done"
        )
        for exercise in item.left:
            tried = exercise in item.best
            state = f"{item.points(exercise)}/{item.max_points[exercise]}" if tried else "not tried"
            lines.append(f"    left: {exercise} ({state})")
    total = sum(item.score for item in lessons)
    top = sum(item.max_score for item in lessons)
    left = sum(len(item.left) for item in lessons)
    lines.append(f"Overall: {total}/{top} points; {left} exercises left.")
    return "\n".join(lines)
