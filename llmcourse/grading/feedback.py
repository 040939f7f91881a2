"""``check()``: fast feedback inside the learner's notebook; only ``llmcourse grade`` counts.

In a solution or exercise notebook, the cell after each exercise is::

    from llmcourse.grading import check
    check("03.rmsnorm", globals())

It runs the exercise's tests in the learner's own kernel: fresh inputs each call, the learner's
answer on them, the package's reference on the same inputs, the same comparison and the same
diagnosis of common mistakes as the grader. Jupyter shows a table (test, points, passed, and for
a failure what differs and a hint); a terminal gets the same as plain text. The result is also
recorded in the progress store for ``llmcourse progress``. Everything here runs in the
learner's process, so it is practice, not a verdict: the table says so, and only ``llmcourse
grade`` (which computes its verdicts outside the kernel) decides a score.

Time: each test's calls get the test's limit (``timeout``, 10 s unless the exercise says
otherwise, 30 s at most in the course), and no test starts after ``CHECK_LIMIT_S`` (60 s), so
``check()`` returns within 60 s plus one test's limit whatever the answer does. On Linux the
answer runs in a forked copy of the kernel that is killed at the limit: a loop in Python or in
C, one that catches every exception, ``os._exit`` or a memory bomb costs that test, and your
kernel keeps none of it (what the answer printed is shown). Elsewhere (macOS, Windows, or once
CUDA is in use) it runs in a helper thread that ``check()`` stops waiting for; the other tests
of a still running answer are then skipped, and the one thing that cannot be outwaited is C
code that holds the GIL (``sum(range(10**15))``): interrupt or restart the kernel. Inside
``llmcourse grade`` the call does nothing: the grader runs its own tests.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmcourse.grading import wire
from llmcourse.grading.calls import (
    ProcessEnded,
    TimeLimitExceeded,
    call_in_fork,
    call_in_thread,
    can_fork,
    memory_budget,
    run_cases,
)
from llmcourse.grading.evaluate import (
    ATTEMPTED,
    CRASHED,
    MISSING,
    NOT_ATTEMPTED,
    NOT_RUN,
    REJECTED,
    TIMED_OUT,
    Outcome,
    exercise_scores,
    expected_outputs,
    judge,
    outcome_for,
)
from llmcourse.grading.progress import record_quietly
from llmcourse.grading.spec import GRADING_ENV, Case, ExerciseTest, seed_of, tests_for

CHECK_LIMIT_S = 60.0  # no test starts after this; each runs at most its own limit
PRACTICE_NOTE = "Practice feedback from your own kernel: only `llmcourse grade` verdicts count."


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
                if row.status in ATTEMPTED:
                    lines.append(f"         Hint: {row.hint}")
                    if row.section:
                        lines.append(f"         See the lesson's section “{row.section}”.")
        lines.extend(self.summary())
        lines.append(PRACTICE_NOTE)
        return "\n".join(lines)

    def summary(self) -> list[str]:
        """For a whole lesson (``check("03", globals())``): points per exercise, then what next.

        One line per exercise (``03.rmsnorm: 2/3 points``, or ``not attempted``), a project's
        measured result beside its points, and one last line with the next step: the first
        exercise short of full marks and the lesson section to reread, or, when all pass,
        ``llmcourse grade`` for the verdict that counts. Empty for a single exercise.
        """
        if "." in self.selector or not self.rows:
            return []
        lines, next_step = [], ""
        for exercise, rows in _by_exercise(self.rows).items():
            score, most = sum(r.points for r in rows), sum(r.max_points for r in rows)
            untouched = all(r.status in (NOT_ATTEMPTED, MISSING) for r in rows)
            state = "not attempted" if untouched else f"{score}/{most} points"
            measured = [r.measured for r in rows if r.measured]
            if measured:
                state += "; " + ", ".join(_measured_text(m) for m in measured)
            lines.append(f"  {exercise}: {state}")
            if score < most and not next_step:
                failed = next(r for r in rows if not r.passed)
                where = f" (reread “{failed.section}”)" if failed.section and not untouched else ""
                verb = "start" if untouched else "finish"
                next_step = f"Next: {verb} {exercise}{where}, then run this cell again."
        if not next_step:
            next_step = (
                "Next: every exercise passes here; `llmcourse grade` on this notebook gives the "
                "verdict that counts, then go on to the next lesson."
            )
        return [f"Lesson {self.selector}, per exercise:", *lines, next_step]

    def to_html(self) -> str:
        cells = []
        for row in self.rows:
            if row.passed:
                mark, advice = '<span style="color:#1a7f37">&#10003;</span>', ""
            else:
                mark = '<span style="color:#cf222e">&#10007;</span>'
                advice = html.escape(row.message)
                if row.status in ATTEMPTED:
                    advice += f"<br><i>Hint:</i> {html.escape(row.hint)}"
                    if row.section:
                        advice += f"<br>See the lesson's section “{html.escape(row.section)}”."
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
            f"<tbody>{''.join(cells)}</tbody></table>"
            f"{_summary_html(self.summary())}"
            f"<small>{html.escape(PRACTICE_NOTE)}</small></div>"
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


def _by_exercise(rows: list[Outcome]) -> dict[str, list[Outcome]]:
    grouped: dict[str, list[Outcome]] = {}
    for row in rows:
        grouped.setdefault(row.exercise, []).append(row)
    return grouped


def _measured_text(measured: Mapping[str, Any]) -> str:
    need = "≥" if measured.get("higher_is_better", True) else "≤"
    return f"{measured['name']} {measured['value']:.4g} (needs {need} {measured['threshold']:.4g})"


def _summary_html(lines: list[str]) -> str:
    if not lines:
        return ""
    head, *items, last = lines
    listed = "".join(f"<li>{html.escape(item.strip())}</li>" for item in items)
    return f"<p>{html.escape(head)}</p><ul>{listed}</ul><p><b>{html.escape(last)}</b></p>"


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
    run_seed = secrets.randbits(62)
    still_running: set[int] = set()  # ids of answers stuck in a thread we stopped waiting for
    deadline = time.monotonic() + CHECK_LIMIT_S
    rows = []
    for test in tests:
        if time.monotonic() > deadline:
            why = f"not run: check() starts no test after {CHECK_LIMIT_S:g} s; check it alone"
            rows.append(outcome_for(test, NOT_RUN, why))
        else:
            rows.append(_run_test(test, namespace, run_seed, still_running))
    result = CheckResult(selector, rows)
    _show(result)
    record_quietly(
        ((s.exercise, s.score, s.max_score) for s in exercise_scores(result.rows).values()),
        source="check",
        measurements=[(row.exercise, row.measured) for row in result.rows if row.measured],
    )
    return result


@contextlib.contextmanager
def try_it() -> Iterator[None]:
    """Run a notebook's demo of an answer; an unfinished answer prints "not attempted yet".

    ``with try_it(): print(perplexity(...))``: while the answer is still the exercise's stub
    (it raises ``NotImplementedError``), the block stops there with one line saying so, and
    "Run All" goes on to the next cell instead of stopping at the first unfinished exercise.
    Any other error is yours to see and propagates as usual.
    """
    try:
        yield
    except NotImplementedError as error:
        print(
            f"Not attempted yet: {_stub_name(error)} still raises NotImplementedError. Write it, "
            "run its cell, then run this cell again."
        )


def _stub_name(error: BaseException) -> str:
    """``perplexity()`` or ``LoRALinear.__init__()``: the function whose stub raised."""
    traceback = error.__traceback__
    name = ""
    while traceback is not None:
        code = traceback.tb_frame.f_code
        name = getattr(code, "co_qualname", code.co_name).rpartition("<locals>.")[2]
        traceback = traceback.tb_next
    return f"{name}()" if name and not name.startswith("<") else "an answer"


def _run_test(
    test: ExerciseTest, namespace: Mapping[str, Any], run_seed: int, still_running: set[int]
) -> Outcome:
    implementations = []
    for name in test.answer:
        if name not in namespace:
            return outcome_for(test, MISSING, f"Define `{name}` in the notebook (run its cell).")
        value = namespace[name]
        if test.exercise.kind != "value" and not callable(value):
            return outcome_for(
                test, MISSING, f"`{name}` should be a function, but it is a {type(value).__name__}."
            )
        own = _packaged_version(test, value)
        if own:
            return outcome_for(
                test,
                REJECTED,
                f"`{name}` is {own}, the package's own version: llmcourse grade scores it 0. "
                "Write it yourself.",
            )
        implementations.append(value)
    if any(id(value) in still_running for value in implementations):
        return outcome_for(
            test,
            NOT_RUN,
            "not run: your answer is still running from a test that timed out; restart the "
            "kernel (Kernel → Restart) to stop it",
        )
    seed = seed_of(run_seed, test.key)
    cases = test.draw_cases(run_seed)
    mine = [wire.loads(wire.dumps((c.args, c.kwargs)), wire.Builder()) for c in cases]
    learner_cases = [Case(tuple(args), dict(kwargs)) for args, kwargs in mine]

    def call() -> list[dict[str, Any]]:
        return run_cases(test, implementations, learner_cases, seed)

    forked = can_fork()
    try:
        if forked:
            encoded, printed = call_in_fork(call, test.timeout, test.memory_mb)
            if printed:
                print(printed, end="" if printed.endswith("\n") else "\n")
        else:
            with memory_budget(test.memory_mb):
                encoded = call_in_thread(call, test.timeout)
    except TimeLimitExceeded:
        message = f"did not finish within {test.timeout:g} s (an infinite loop, or far too slow?)"
        if not forked:
            still_running.update(id(value) for value in implementations)
            message += "; if it keeps running in the background, restart the kernel"
        return outcome_for(test, TIMED_OUT, message)
    except ProcessEnded as ended:
        return outcome_for(test, CRASHED, f"the process running your answer ended ({ended})")
    build = wire.Builder()
    expected = expected_outputs(test, cases, build, seed)
    # The outputs travel as they do in llmcourse grade: as JSON text.
    results = json.loads(json.dumps(encoded, allow_nan=False))
    return judge(test, cases, results, expected, build, seed)


def _packaged_version(test: ExerciseTest, value: Any) -> str:
    """The name of the package's reference when ``value`` is that very object, else ``""``."""
    for reference in test.exercise.references.values():
        if reference is not None and value is reference:
            module = getattr(reference, "__module__", "")
            return f"{module}.{getattr(reference, '__qualname__', '')}"
    return ""


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
