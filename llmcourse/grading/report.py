"""How grades are shown: a terminal table, per-test details, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from llmcourse.grading.evaluate import ATTEMPTED
from llmcourse.grading.files import write_atomically
from llmcourse.grading.grade import NotebookGrade


def render_table(grades: list[NotebookGrade]) -> str:
    """One row per notebook: score, percentage, how many problems its run had."""
    width = max(len("notebook"), *(len(g.path) for g in grades))
    lines = [f"{'notebook':<{width}}  lesson  score    %  problems"]
    for grade in grades:
        percent = 100 * grade.score / grade.max_score if grade.max_score else 0.0
        lines.append(
            f"{grade.path:<{width}}  {grade.lesson:>6}  {grade.score:>2}/{grade.max_score:<3}"
            f" {percent:>3.0f}  {len(grade.problems)}"
        )
    return "\n".join(lines)


def render_details(grade: NotebookGrade) -> str:
    """Every exercise of one notebook, with the reason and hint for each lost point."""
    lines = [
        f"{grade.path}: {grade.score}/{grade.max_score} points ({grade.seconds:.1f} s, "
        f"inputs drawn with seed {grade.seed})"
    ]
    for exercise, score in grade.exercises.items():
        lines.append(f"  {exercise}: {score.score}/{score.max_score}")
        for lost in score.lost:
            lines.append(f"    - {lost.test} (-{lost.max_points}): {lost.message}")
            if lost.status in ATTEMPTED:  # a hint helps only an attempt
                lines.append(f"      hint: {lost.hint}")
    if grade.problems:
        lines.append("  problems while running the notebook:")
        lines.extend(f"    - {problem}" for problem in grade.problems)
    return "\n".join(lines)


def to_json(grades: list[NotebookGrade]) -> str:
    return json.dumps({"notebooks": [g.to_dict() for g in grades]}, indent=2, ensure_ascii=False)


def write_csv(grades: list[NotebookGrade], path: Path) -> None:
    """A spreadsheet for the gradebook: one row per notebook, one column per exercise.

    Written atomically, never through a symbolic link (``files.write_atomically``)."""
    exercises = sorted({ex for grade in grades for ex in grade.exercises})
    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow(["notebook", "lesson", "score", "max_score", *exercises, "problems"])
    for grade in grades:
        per_exercise = grade.exercises
        writer.writerow(
            [
                grade.path,
                grade.lesson,
                grade.score,
                grade.max_score,
                *(per_exercise[ex].score if ex in per_exercise else "" for ex in exercises),
                " | ".join(grade.problems),
            ]
        )
    write_atomically(path, handle.getvalue())
