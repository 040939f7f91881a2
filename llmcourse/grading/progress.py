"""The learner's progress: every ``check()`` and ``llmcourse grade`` result, in one SQLite file.

The file is ``progress.sqlite3`` in ``llmcourse.utils.home_dir()`` (``$LLMCOURSE_HOME``
overrides). It runs in WAL mode and every write is one short ``BEGIN IMMEDIATE`` transaction
on a fresh connection with a busy timeout, so a notebook kernel and ``llmcourse grade`` writing at
the same moment both land. A file that is not a database (or is damaged) is renamed to
``progress.sqlite3.corrupt-<time>`` with a message, and a fresh store takes its place.

The learner owns this file and anything can write to it, so it is a record of practice, not of
verdicts. Each write is a *run* (its rows and their totals); ``llmcourse progress`` counts only
rows that are plausible: a known exercise, ``0 <= score <= max_score``, the exercise's current
``max_score``, a source of ``check`` or ``grade``, a time that is not in the future, and a run
whose totals add up. It lists the rest (a row of 7000/140, say) instead of counting them.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from llmcourse.grading.spec import graded_lessons, tests_for

DATABASE_NAME = "progress.sqlite3"
SOURCES = ("check", "grade")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exercise TEXT NOT NULL,
    score INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    source TEXT NOT NULL,
    notebook TEXT,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exercise TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    threshold REAL NOT NULL,
    higher_is_better INTEGER NOT NULL,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    notebook TEXT,
    score INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    recorded_at TEXT NOT NULL
);
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


@dataclass(frozen=True)
class StoredRow:
    """One row of the results table, with the totals of the run it claims to belong to."""

    id: int
    exercise: Any
    score: Any
    max_score: Any
    source: Any
    recorded_at: Any
    run: tuple[Any, Any, Any] | None  # (score, max_score, rows) of its run
    run_sums: tuple[Any, Any, Any] | None  # what its run's rows actually add up to


class ProgressStore:
    """Append-only log of results; read back as the best plausible score per exercise."""

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
        measurements: Iterable[tuple[str, Mapping[str, Any]]] = (),
    ) -> None:
        """Append ``(exercise, score, max_score)`` rows from ``source`` ("check" or "grade") as
        one run, with its totals, and the projects' ``(exercise, Outcome.measured)`` beside it."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        rows = [(ex, int(score), int(top)) for ex, score, top in scores]
        if not rows:
            return
        measured = [
            (
                ex,
                str(m["name"]),
                float(m["value"]),
                float(m["threshold"]),
                int(bool(m.get("higher_is_better", True))),
                source,
                now,
            )
            for ex, m in measurements
        ]

        def write(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            run = connection.execute(
                "INSERT INTO runs (source, notebook, score, max_score, rows, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    source,
                    notebook,
                    sum(r[1] for r in rows),
                    sum(r[2] for r in rows),
                    len(rows),
                    now,
                ),
            ).lastrowid
            connection.executemany(
                "INSERT INTO results (exercise, score, max_score, source, notebook, recorded_at,"
                " run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(ex, score, top, source, notebook, now, run) for ex, score, top in rows],
            )
            connection.executemany(
                "INSERT INTO measurements (exercise, name, value, threshold, higher_is_better,"
                " source, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                measured,
            )
            connection.execute("COMMIT")

        self._run(write)

    def rows(self) -> list[StoredRow]:
        """Every result row, with its run's recorded totals and what its rows add up to."""

        def read(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(
                "SELECT r.id, r.exercise, r.score, r.max_score, r.source, r.recorded_at,"
                "  runs.score, runs.max_score, runs.rows, sums.score, sums.max_score, sums.n"
                " FROM results AS r"
                " LEFT JOIN runs ON runs.id = r.run_id"
                " LEFT JOIN (SELECT run_id, SUM(score) AS score, SUM(max_score) AS max_score,"
                "   COUNT(*) AS n FROM results GROUP BY run_id) AS sums ON sums.run_id = r.run_id"
                " ORDER BY r.id"
            ).fetchall()

        return [
            StoredRow(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                None if row[6] is None else (row[6], row[7], row[8]),
                None if row[9] is None else (row[9], row[10], row[11]),
            )
            for row in self._run(read)
        ]

    def latest_measurements(self) -> dict[str, dict[str, Any]]:
        """The latest measured result of each project: ``{exercise: {name, value, threshold,
        higher_is_better, source, recorded_at}}``. Shown, never counted: points come from
        ``results`` only."""

        def read(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(
                "SELECT exercise, name, value, threshold, higher_is_better, source, recorded_at"
                " FROM measurements ORDER BY id"
            ).fetchall()

        latest = {}
        for exercise, name, value, threshold, higher, source, when in self._run(read):
            latest[exercise] = {
                "name": name,
                "value": value,
                "threshold": threshold,
                "higher_is_better": bool(higher),
                "source": source,
                "recorded_at": when,
            }
        return latest

    def best(self, max_points: dict[str, int] | None = None) -> dict[str, BestResult]:
        """Best plausible result per exercise (highest score; ties go to the latest)."""
        return plausible(self.rows(), max_points or known_max_points())[0]

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
            connection.executescript(_SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(results)")}
            if "run_id" not in columns:  # a store written before runs were recorded
                connection.execute("ALTER TABLE results ADD COLUMN run_id INTEGER")
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


def plausible(
    rows: list[StoredRow], max_points: dict[str, int], now: datetime | None = None
) -> tuple[dict[str, BestResult], list[str]]:
    """The best plausible result per exercise, and one line per row that is not plausible."""
    now = now or datetime.now(timezone.utc)
    flagged: list[str] = []
    kept: dict[str, list[StoredRow]] = {}
    for row in rows:
        problem = _implausible(row, max_points, now)
        if problem:
            flagged.append(f"row {row.id} ({row.exercise} {row.score}/{row.max_score}): {problem}")
        else:
            kept.setdefault(row.exercise, []).append(row)
    best = {}
    for exercise, group in kept.items():
        top = max(group, key=lambda r: (r.score, r.id))
        best[exercise] = BestResult(
            exercise,
            top.score,
            top.max_score,
            len(group),
            max(str(r.recorded_at) for r in group),
        )
    return best, flagged


def _implausible(row: StoredRow, max_points: dict[str, int], now: datetime) -> str:
    if not isinstance(row.exercise, str) or row.exercise not in max_points:
        return "not an exercise of the course"
    if not isinstance(row.score, int) or not isinstance(row.max_score, int):
        return "scores must be whole numbers"
    top = max_points[row.exercise]
    if row.max_score != top:
        return f"{row.exercise} is worth {top} points, not {row.max_score}"
    if not 0 <= row.score <= row.max_score:
        return f"a score of {row.score} out of {row.max_score} is impossible"
    if row.source not in SOURCES:
        return f"written by {row.source!r}, not by check() or llmcourse grade"
    try:
        when = datetime.fromisoformat(str(row.recorded_at))
    except ValueError:
        return "its time is not a date"
    if when.tzinfo is None or when > now + timedelta(days=1):
        return "recorded in the future"
    if row.run is None:
        return "not part of a recorded run (not written by check() or llmcourse grade)"
    if row.run != row.run_sums:
        return "its run's totals do not add up"
    return ""


def known_max_points() -> dict[str, int]:
    """Every exercise of every graded lesson, with its points today."""
    points: dict[str, int] = {}
    for lesson in graded_lessons():
        try:
            tests = tests_for(lesson)
        except Exception:  # reported per lesson by lesson_progress
            continue
        for test in tests:
            points[test.exercise_id] = points.get(test.exercise_id, 0) + test.points
    return points


def _is_corruption(error: sqlite3.DatabaseError) -> bool:
    """Not a database, or a damaged one, as opposed to locked, read-only or a full disk."""
    code = getattr(error, "sqlite_errorname", None)  # Python >= 3.11
    if code is not None:
        return code in {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
    return type(error) is sqlite3.DatabaseError


def record_quietly(
    scores: Iterable[tuple[str, int, int]],
    *,
    source: str,
    notebook: str | None = None,
    measurements: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> None:
    """Record, but never let a progress problem (read-only home, full disk) break grading."""
    try:
        ProgressStore().record(scores, source=source, notebook=notebook, measurements=measurements)
    except (sqlite3.Error, OSError) as error:
        print(f"[llmcourse] Progress not saved: {error}", file=sys.stderr)


@dataclass(frozen=True)
class LessonProgress:
    """Where the learner stands in one lesson: points now, and the exercises not yet full."""

    lesson: str
    max_points: dict[str, int]  # every exercise of the lesson -> its points today
    best: dict[str, BestResult]
    problem: str = ""  # set when the lesson's tests could not be loaded
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)  # projects' latest results

    def points(self, exercise: str) -> int:
        result = self.best.get(exercise)
        return 0 if result is None else result.score

    @property
    def score(self) -> int:
        return sum(self.points(exercise) for exercise in self.max_points)

    @property
    def max_score(self) -> int:
        return sum(self.max_points.values())

    @property
    def left(self) -> list[str]:
        return [ex for ex, top in self.max_points.items() if self.points(ex) < top]

    @property
    def next_step(self) -> str:
        """What to do next in this lesson, in one line."""
        if self.problem:
            return ""
        if not self.left:
            return "done: every exercise has full marks"
        exercise = self.left[0]
        verb = "finish" if exercise in self.best else "start"
        return f'{verb} {exercise} in exercises/{self.lesson}_*.ipynb, then check("{exercise}")'

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
            "measured": self.measured,
            "next_step": self.next_step,
            "problem": self.problem,
        }


@dataclass
class Progress:
    """Every lesson's progress, and the stored rows that were not plausible."""

    lessons: list[LessonProgress]
    flagged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"lessons": [item.to_dict() for item in self.lessons], "flagged": self.flagged}


def lesson_progress(store: ProgressStore | None = None) -> Progress:
    """Every graded lesson with the learner's best plausible scores."""
    lessons = []
    max_points: dict[str, int] = {}
    per_lesson: dict[str, dict[str, int]] = {}
    for lesson in graded_lessons():
        try:
            tests = tests_for(lesson)
        except Exception as error:  # one broken test module must not hide the other lessons
            from llmcourse.grading.calls import describe_exception

            problem = f"its tests could not be loaded: {describe_exception(error)}"
            lessons.append(LessonProgress(lesson, {}, {}, problem))
            continue
        mine: dict[str, int] = {}
        for test in tests:
            mine[test.exercise_id] = mine.get(test.exercise_id, 0) + test.points
        per_lesson[lesson] = mine
        max_points.update(mine)
    store = store or ProgressStore()
    best, flagged = plausible(store.rows(), max_points)
    measured = store.latest_measurements()
    for lesson, mine in per_lesson.items():
        lessons.append(
            LessonProgress(
                lesson,
                mine,
                {ex: r for ex, r in best.items() if ex in mine},
                measured={ex: m for ex, m in measured.items() if ex in mine},
            )
        )
    lessons.sort(key=lambda item: item.lesson)
    return Progress(lessons, flagged)


def render_progress(progress: Progress) -> str:
    """The ``llmcourse progress`` report: points per lesson and what is left to do."""
    lessons = progress.lessons
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
        for exercise, m in item.measured.items():
            need = "≥" if m["higher_is_better"] else "≤"
            lines.append(
                f"    project {exercise}: {m['name']} {m['value']:.4g} (needs {need} "
                f"{m['threshold']:.4g}; {m['source']}, {m['recorded_at']})"
            )
        lines.append(f"    next: {item.next_step}")
    total = sum(item.score for item in lessons)
    top = sum(item.max_score for item in lessons)
    left = sum(len(item.left) for item in lessons)
    lines.append(f"Overall: {total}/{top} points; {left} exercises left.")
    if progress.flagged:
        lines.append(
            f"Not counted: {len(progress.flagged)} rows of the progress store are not plausible "
            "(the store is yours to edit; only `llmcourse grade` verdicts count):"
        )
        lines.extend(f"    {text}" for text in progress.flagged[:10])
        if len(progress.flagged) > 10:
            lines.append(f"    … and {len(progress.flagged) - 10} more")
    return "\n".join(lines)
