"""``check()``: run an exercise's tests inside the learner's notebook and show what went wrong.

In a solution or exercise notebook, the cell after each exercise is::

    from llmcourse.grading import check
    check("03.rmsnorm", globals())

Jupyter shows a table (test, points, passed, and for a failure what was expected and a hint);
a terminal or script gets the same as plain text. The result is also recorded in the progress
store for ``llmcourse progress``. Inside ``llmcourse grade`` the call does nothing: the grader
runs its own tests after the notebook.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmcourse.grading.api import tests_for
from llmcourse.grading.progress import record_quietly
from llmcourse.grading.runner import (
    GRADING_ENV,
    NOT_ATTEMPTED,
    Outcome,
    exercise_scores,
    run_tests,
)


@dataclass
class CheckResult:
    """What ``check()`` found: ``score`` out of ``max_score``, one row per test."""

    selector: str
    rows: list[Outcome]
    shown_in_cell: int | None = None  # the notebook cell whose output already shows this table

    @property
    def score(self) -> int:
        return sum(row.points for row in self.rows)

    @property
    def max_score(self) -> int:
        return sum(row.max_points for row in self.rows)

    def __repr__(self) -> str:
        return f"<CheckResult {self.selector}: {self.score}/{self.max_score} points>"

    def to_text(self) -> str:
        lines = [f"{self.selector}: {self.score}/{self.max_score} points"]
        for row in self.rows:
            mark = "pass" if row.passed else "FAIL"
            lines.append(f"  [{mark}] {row.points}/{row.max_points}  {self._title(row)}")
            if not row.passed:
                lines.append(f"         {row.message}")
                if row.status != NOT_ATTEMPTED:
                    lines.append(f"         Hint: {row.hint}")
        return "\n".join(lines)

    def to_html(self) -> str:
        cells = []
        for row in self.rows:
            if row.passed:
                mark, advice = '<span style="color:#1a7f37">&#10003;</span>', ""
            else:
                mark = '<span style="color:#cf222e">&#10007;</span>'
                advice = html.escape(row.message)
                if row.status != NOT_ATTEMPTED:
                    advice += f"<br><i>Hint:</i> {html.escape(row.hint)}"
            cells.append(
                f"<tr><td style='text-align:left'>{html.escape(self._title(row))}</td>"
                f"<td>{row.points}/{row.max_points}</td><td>{mark}</td>"
                f"<td style='text-align:left'>{advice}</td></tr>"
            )
        verdict = "all tests pass" if self.score == self.max_score else "keep going"
        return (
            f"<div><b>{html.escape(self.selector)}</b>: {self.score}/{self.max_score} points"
            f" ({verdict})<table><thead><tr><th style='text-align:left'>test</th>"
            "<th>points</th><th>passed</th><th style='text-align:left'>hint</th></tr></thead>"
            f"<tbody>{''.join(cells)}</tbody></table></div>"
        )

    def _title(self, row: Outcome) -> str:
        name = row.test.replace("_", " ")
        return name if "." in self.selector else f"{row.exercise}: {name}"

    def _ipython_display_(self) -> None:
        # check() has already shown this table in the cell that returned it: once is enough.
        if self.shown_in_cell is None or self.shown_in_cell != _execution_count():
            self._publish()

    def _publish(self) -> None:
        from IPython.display import display

        display({"text/html": self.to_html(), "text/plain": self.to_text()}, raw=True)


def check(selector: str, namespace: Mapping[str, Any]) -> CheckResult:
    """Run the tests of one exercise (``"03.rmsnorm"``) or a whole lesson (``"03"``).

    ``namespace`` is where the learner's answers live: pass ``globals()``. Shows the result
    (HTML table in Jupyter, text elsewhere), records it for ``llmcourse progress`` and returns it.
    """
    if not isinstance(namespace, Mapping):
        raise TypeError(
            f"check() needs your notebook's names: call check({selector!r}, globals()), "
            f"not with a {type(namespace).__name__}."
        )
    tests = tests_for(selector)
    if os.environ.get(GRADING_ENV):
        return CheckResult(selector, [])
    result = CheckResult(selector, run_tests(tests, namespace))
    _show(result)
    record_quietly(
        ((s.exercise, s.score, s.max_score) for s in exercise_scores(result.rows).values()),
        source="check",
    )
    return result


def _show(result: CheckResult) -> None:
    shell = _ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":  # Jupyter
        result._publish()
    else:
        print(result.to_text())
    if shell is not None:
        result.shown_in_cell = _execution_count()


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _execution_count() -> int | None:
    shell = _ipython()
    return None if shell is None else shell.execution_count
