"""The ``llmcourse grade`` and ``llmcourse progress`` subcommands (arguments and what they print).

Exit status: 0 whenever grading ran, however low the scores; 2 for misuse (a missing path, a
notebook whose lesson cannot be told, a lesson without exercises, bad option values).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmcourse.grading.files import UnsafeOutput, check_output
from llmcourse.grading.grade import (
    GradeOptions,
    NotebookGrade,
    UsageError,
    find_notebooks,
    grade_notebooks,
)


def add_grade_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = GradeOptions()
    parser.add_argument("paths", nargs="+", metavar="PATH", help="notebooks and/or folders")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="write a CSV too (default for a folder: grades.csv inside it)",
    )
    parser.add_argument("--lesson", help="grade every notebook as lesson NN (default: NN_ prefix)")
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=defaults.cell_timeout,
        help=f"seconds per cell (default {defaults.cell_timeout:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help=f"seconds for all of a notebook's cells (default {defaults.timeout:g})",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=defaults.memory_mb,
        help=f"memory ceiling of each kernel in MiB, 0 for none (default {defaults.memory_mb})",
    )
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at once")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed the tests' inputs (to reproduce a run; default: a fresh seed per notebook)",
    )
    parser.add_argument(
        "--exercises",
        action="append",
        default=[],
        metavar="FILE",
        help="also load exercise tests from this Python file (repeatable)",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not add the scores to the progress store"
    )


def run_grade(args: argparse.Namespace) -> int:
    from llmcourse.grading.progress import record_quietly
    from llmcourse.grading.report import render_details, render_table, to_json, write_csv

    def say(message: str) -> None:
        print(f"[llmcourse grade] {message}", file=sys.stderr, flush=True)

    def graded(grade: NotebookGrade) -> None:
        say(f"{grade.path}: {grade.score}/{grade.max_score} ({grade.seconds:.1f} s)")

    folders = [Path(p) for p in args.paths if Path(p).is_dir()]
    csv_path = args.csv or (folders[0] / "grades.csv" if folders else None)
    try:
        options = GradeOptions(
            cell_timeout=args.cell_timeout,
            timeout=args.timeout,
            memory_mb=args.memory_mb,
            exercise_files=tuple(args.exercises),
            seed=args.seed,
        )
        for path in options.exercise_files:
            _load(path)
        if csv_path is not None:
            check_output(csv_path)  # refuse a linked grades.csv before grading, not after
        notebooks = find_notebooks(args.paths, args.lesson, warn=say)
        grades = grade_notebooks(notebooks, options, jobs=args.jobs, on_graded=graded)
    except (UsageError, UnsafeOutput) as error:
        print(f"llmcourse grade: {error}", file=sys.stderr)
        return 2
    if not args.no_record:
        for grade in grades:
            scores = [(ex, s.score, s.max_score) for ex, s in grade.exercises.items()]
            measured = [(o.exercise, o.measured) for o in grade.outcomes if o.measured]
            record_quietly(
                scores,
                source="grade",
                notebook=str(Path(grade.path).resolve()),
                measurements=measured,
            )
    if args.json:
        print(to_json(grades))
    else:
        print(render_table(grades))
        if len(grades) == 1:
            print()
            print(render_details(grades[0]))
    if csv_path is not None:
        try:
            write_csv(grades, csv_path)
        except (UnsafeOutput, OSError) as error:
            print(f"llmcourse grade: not writing {csv_path}: {error}", file=sys.stderr)
            return 2
        say(f"wrote {csv_path}")
    return 0


def _load(path: str) -> None:
    from llmcourse.grading.spec import load_exercise_file

    try:
        load_exercise_file(path)
    except ValueError as error:
        raise UsageError(str(error)) from None


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_progress(args: argparse.Namespace) -> int:
    from llmcourse.grading.progress import lesson_progress, render_progress

    progress = lesson_progress()
    if args.json:
        print(json.dumps(progress.to_dict(), indent=2))
    else:
        print(render_progress(progress))
    return 0
