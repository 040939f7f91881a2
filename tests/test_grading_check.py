"""check(): what a learner sees in a terminal and in a real Jupyter kernel, and its time limit."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
from grading_fixtures.notebooks import LESSON_99
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from llmcourse.grading import CheckResult, check, try_it
from llmcourse.grading.calls import can_fork
from llmcourse.grading.evaluate import FAILED, PASSED, Outcome
from llmcourse.grading.feedback import PRACTICE_NOTE
from llmcourse.grading.progress import ProgressStore
from llmcourse.grading.spec import EXTRA_EXERCISES_ENV, GRADING_ENV, load_exercise_file


@pytest.fixture(autouse=True)
def lesson_99(monkeypatch, tmp_path):
    load_exercise_file(LESSON_99)
    monkeypatch.setenv(EXTRA_EXERCISES_ENV, str(LESSON_99))  # for kernels started by a test
    monkeypatch.setenv("LLMCOURSE_HOME", str(tmp_path / "home"))


def mean_square(values):
    return float(np.mean(np.asarray(values, dtype=float) ** 2))


def test_outside_a_notebook_check_prints_text_and_returns_the_result(capsys):
    def stub(values):
        raise NotImplementedError

    result = check("99.mean_square", {"mean_square": stub})
    text = capsys.readouterr().out
    assert text.startswith("99.mean_square: 0/3 points")
    assert "[FAIL] 0/2  mean square matches numpy on random values" in text
    assert "not attempted yet" in text and "Hint:" not in text  # the hint sits in the notebook
    assert text.rstrip().endswith(PRACTICE_NOTE)  # practice, not a verdict
    assert (result.score, result.max_score) == (0, 3)

    result = check("99.mean_square", {"mean_square": lambda v: float(np.sum(v))})
    text = capsys.readouterr().out
    assert "[FAIL]" in text and "Hint: Square every value, then average." in text
    assert "expected" in text and "got" in text  # what was expected and what came out
    assert "See the lesson's section “Squares”." in text
    assert repr(result) == "<CheckResult 99.mean_square: 0/3 points>"

    result = check("99.mean_square", {"mean_square": mean_square})
    assert (result.score, result.max_score) == (3, 3)
    assert all(row.passed for row in result.rows)
    assert "99.mean_square: 3/3 points" in capsys.readouterr().out


def test_a_common_mistake_is_named(capsys):
    def mean_of_absolutes(values):
        return float(np.mean(np.abs(np.asarray(values, dtype=float))))

    result = check("99.mean_square", {"mean_square": mean_of_absolutes})
    first = result.rows[0]
    assert first.mistake == "the mean of absolute values instead of squares"
    assert "your output matches a common mistake: the mean of absolute values" in first.message
    assert "Hint:" in capsys.readouterr().out


def test_a_lesson_selector_runs_every_exercise_of_the_lesson(capsys):
    result = check("99", {"mean_square": mean_square})
    assert [row.exercise for row in result.rows].count("99.normalize") == 2
    assert (result.score, result.max_score) == (3, 12)
    assert "99.normalize: normalize gives unit length" in capsys.readouterr().out


def test_a_lesson_check_ends_with_points_per_exercise_and_the_next_step(capsys):
    result = check("99", {"mean_square": mean_square})
    text = capsys.readouterr().out
    assert "Lesson 99, per exercise:\n  99.mean_square: 3/3 points\n" in text
    assert "  99.normalize: not attempted\n" in text  # missing, so never started
    assert "Next: start 99.normalize, then run this cell again." in text
    assert "accuracy on held-out points" not in text  # the project was not attempted
    assert "<li>99.mean_square: 3/3 points</li>" in result.to_html()

    def wrong_threshold(xs, ys):
        return 1e9

    check("99", {"mean_square": lambda v: 0.0, "fit_threshold": wrong_threshold})
    text = capsys.readouterr().out
    assert "Next: finish 99.mean_square (reread “Squares”)" in text
    assert "99.threshold: 0/2 points; accuracy on held-out points 0." in text
    assert ProgressStore().latest_measurements()["99.threshold"]["value"] < 0.9  # for progress
    single = check("99.mean_square", {"mean_square": mean_square})
    assert single.summary() == [] and "per exercise" not in capsys.readouterr().out


def test_try_it_lets_run_all_go_past_an_unfinished_stub(capsys):
    def bigram_perplexity(train, test):
        raise NotImplementedError("Replace this with your code for bigram_perplexity().")

    with try_it():
        print(bigram_perplexity([], []))
    assert capsys.readouterr().out == (
        "Not attempted yet: bigram_perplexity() still raises NotImplementedError. Write it, "
        "run its cell, then run this cell again.\n"
    )
    with pytest.raises(ZeroDivisionError), try_it():  # a real error is the learner's to see
        print(1 / 0)


def test_results_are_recorded_for_progress(capsys):
    check("99", {"mean_square": mean_square})
    best = ProgressStore().best()
    assert (best["99.mean_square"].score, best["99.mean_square"].max_score) == (3, 3)
    assert (best["99.normalize"].score, best["99.normalize"].max_score) == (0, 3)


def test_misuse_is_a_clear_error():
    with pytest.raises(TypeError, match=r"check\('99.mean_square', globals\(\)\)"):
        check("99.mean_square", None)
    with pytest.raises(ValueError, match="Unknown exercise"):
        check("99.mean_sqare", {})


def test_inside_the_grader_check_does_nothing(monkeypatch, capsys):
    monkeypatch.setenv(GRADING_ENV, "1")
    result = check("99.mean_square", {"mean_square": mean_square})
    assert result.rows == [] and capsys.readouterr().out == ""
    assert ProgressStore().best() == {}


def test_the_packages_own_function_is_refused():
    from llmcourse.nn.attention import scaled_dot_product_attention

    result = check("03.attention", {"attention": scaled_dot_product_attention})
    assert result.score == 0
    assert "the package's own version: llmcourse grade scores it 0" in result.rows[0].message


def test_html_table_escapes_the_learners_text():
    rows = [
        Outcome("99.x", "shows_<b>", 1, FAILED, "expected <tensor>", "use a & b"),
        Outcome("99.x", "passes", 2, PASSED),
    ]
    html = CheckResult("99.x", rows).to_html()
    assert "&lt;tensor&gt;" in html and "use a &amp; b" in html and "shows &lt;b&gt;" in html
    assert html.count("<b>") == 1  # only the title is bold: no markup from the rows
    assert "2/3 points" in html and html.count("<tr>") == 3  # header + two tests
    assert "only `llmcourse grade` verdicts count" in html


def test_check_returns_in_bounded_time_whatever_the_answer_does(capsys):
    """Loops in Python and in C, caught exceptions, a C loop holding the GIL, an exit: each
    test stops at its 3 s limit (in a forked copy on Linux, which is then killed)."""
    give_up = time.monotonic() + 20  # abandoned helper threads end by themselves (not Linux)

    def catches_everything(values):
        while time.monotonic() < give_up:
            with contextlib.suppress(BaseException):
                time.sleep(1)  # C code

    def busy(values):
        while time.monotonic() < give_up:
            try:
                sum(range(10**6))
            except BaseException:
                continue

    def holds_the_gil(values):
        return sum(range(10**15))  # C code that never lets Python run

    answers = [catches_everything, busy]
    if can_fork():
        answers.append(holds_the_gil)
    for answer in answers:
        start = time.monotonic()
        result = check("99.mean_square", {"mean_square": answer})
        seconds = time.monotonic() - start
        assert seconds < 2 * (3.0 + 3.0), seconds  # two tests' limits, plus slack
        assert result.rows[0].status == "timed out"
        if can_fork():
            assert result.rows[1].status == "timed out"  # killed, so the next test ran too
        else:
            assert result.rows[1].status == "not run"  # still running: not called again
            assert "restart the kernel" in result.rows[1].message
    assert "did not finish within 3 s" in capsys.readouterr().out


@pytest.mark.skipif(not can_fork(), reason="answers run in a forked copy on Linux only")
def test_on_linux_an_answer_that_exits_or_crashes_costs_only_its_test(capsys):
    import os

    def exits(values):
        os._exit(3)

    result = check("99.mean_square", {"mean_square": exits})
    assert [row.status for row in result.rows] == ["crashed", "crashed"]
    assert "it exited with status 3" in result.rows[0].message

    def talks(values):
        print("hello from the answer")
        return mean_square(values)

    assert check("99.mean_square", {"mean_square": talks}).score == 3
    assert "hello from the answer" in capsys.readouterr().out  # its output is passed on


@pytest.mark.slow
def test_a_learner_fixes_an_exercise_in_a_real_kernel(tmp_path):
    """Open the exercise, check a wrong answer, read the hint, fix it, see full points."""
    cells = [
        "import numpy as np\nfrom llmcourse.grading import check",
        "def mean_square(values):\n    raise NotImplementedError('Replace this line')",
        'check("99.mean_square", globals())',
        "def mean_square(values):\n    return float(np.sum(values))",
        'check("99.mean_square", globals())',
        "def mean_square(values):\n    return float(np.mean(np.asarray(values) ** 2))",
        'result = check("99.mean_square", globals())\nresult',
        'check("99.mean_square", globals()).score',
        "def normalize(vector):\n    while True:\n        pass",
        'check("99.normalize", globals())',
        "import time\ndef clip(values, low, high):\n    while True:\n        try:\n"
        "            time.sleep(100)\n        except BaseException:\n            pass",
        'check("99.clip", globals())',
    ]
    notebook = new_notebook(cells=[new_code_cell(source) for source in cells])
    NotebookClient(notebook, kernel_name="llmcourse", timeout=120).execute()

    def html(index: int) -> list[str]:
        outputs = notebook.cells[index].outputs
        return [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]

    (not_attempted,) = html(2)
    assert "0/3 points" in not_attempted and "not attempted yet" in not_attempted
    assert "Hint" not in not_attempted
    (wrong,) = html(4)
    assert "mean square matches numpy on random values" in wrong
    assert "&#10007;" in wrong and "<i>Hint:</i> Square every value, then average." in wrong
    assert html(6) == [html(6)[0]] and "3/3 points (all tests pass)" in html(6)[0]  # shown once
    (score,) = [o for o in notebook.cells[7].outputs if o["output_type"] == "execute_result"]
    assert score["data"]["text/plain"] == "3"  # a second check in the same kernel agrees
    (looping,) = html(9)
    assert "did not finish within 3 s" in looping
    (sleeping,) = html(11)  # C code that swallows every exception: check() still returned
    assert "did not finish within 3 s" in sleeping
    assert ProgressStore().best()["99.mean_square"].score == 3  # the kernel recorded it
