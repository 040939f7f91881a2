"""The course in a real browser: JupyterLab, the lesson widgets, check() and llmcourse progress.

One JupyterLab server (started with ``llmcourse lab``, as ``make lab`` does) serves the whole
module; headless Chromium (Debian's, through Playwright) opens one notebook per test:

- lesson 03: Run → Run All Cells, then the AttentionExplorer's layer slider moves and the
  heatmap image that the browser shows changes;
- lesson 04: only the ScalingExplorer's cell runs (the whole lesson trains models for about
  1.5 minutes, none of which the widget needs); the compute slider moves and the table's numbers
  change to the compute-optimal values ``llmcourse.scaling`` gives for the new budget;
- exercise 01: a wrong answer typed into the editor gets a failing row with a hint from
  ``check()``, the solution's answer gets full points, and ``!llmcourse progress`` shows them.

Screenshots go to ``test-artifacts/e2e/``, with JupyterLab's log. Without Chromium or
Playwright the three browser tests are skipped with the reason and the fix; the tests at the end
check those reasons.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e import browser as browser_module
from e2e.browser import CHROMIUM_ARGS, find_chromium, unavailable_reason
from e2e.server import JupyterLabServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
UNAVAILABLE = unavailable_reason()

pytestmark = pytest.mark.e2e
# On the three browser tests; the tests of the skip reasons below run everywhere.
needs_browser = pytest.mark.skipif(
    UNAVAILABLE is not None, reason=f"browser tests skipped: {UNAVAILABLE}"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLabServer]:
    server = JupyterLabServer(
        ROOT, tmp_path_factory.mktemp("jupyterlab"), ARTIFACTS / "jupyterlab.log"
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh --user-data-dir
            executable_path=str(find_chromium()),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, lab: JupyterLabServer, request: pytest.FixtureRequest):
    page = browser.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        try:  # the last state, kept for a failing test above all
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"))
        finally:
            page.close()
            lab.shutdown_kernels()  # the next test gets the CPU and memory back


def _image_loaded(image) -> bool:
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def _assert_not_upscaled(image) -> None:
    """The browser shows the figure at most at the size it was drawn (no blurry stretching)."""
    shown, drawn = image.evaluate("img => [img.getBoundingClientRect().width, img.naturalWidth]")
    assert 0 < shown <= drawn + 1, f"a {drawn}-pixel-wide figure is shown {shown} pixels wide"


@pytest.mark.slow
@needs_browser
def test_lesson_03_layer_slider_redraws_the_attention_heatmap(page, lab):
    from e2e.notebook import Notebook, poll

    notebook = Notebook(page, lab, "lessons/03_llm_architecture.ipynb")
    notebook.open()
    # The kernel the lessons name is the one the set-up registered: no "Select Kernel" dialog.
    assert notebook.kernel_display_name() == "Python 3 (llmcourse)"
    seconds = notebook.run_all(timeout=420)
    print(f"lesson 03, Run All Cells in the browser: {seconds:.0f} s")
    assert notebook.error_outputs() == []

    explorer = notebook.panel.locator(
        ".widget-vbox", has=page.locator(".widget-label", has_text=re.compile(r"^Layer$"))
    )
    layer = explorer.locator(
        ".widget-slider", has=page.locator(".widget-label", has_text=re.compile(r"^Layer$"))
    )
    image = explorer.locator("img.widget-image")
    assert "tokens · smollm2" in explorer.locator(".widget-html-content").inner_text()
    poll(lambda: _image_loaded(image), 30, "the heatmap image to load", page)
    _assert_not_upscaled(image)
    before_src, before_pixels = image.get_attribute("src"), image.screenshot()
    notebook.screenshot(ARTIFACTS / "03_attention_explorer_layer_0.png", showing=explorer)

    layer.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    assert layer.locator(".widget-readout").inner_text().strip() == "1"
    poll(
        lambda: image.get_attribute("src") != before_src and _image_loaded(image),
        60,
        "the heatmap of layer 1 to replace layer 0's",
        page,
    )
    after_pixels = image.screenshot()
    notebook.screenshot(ARTIFACTS / "03_attention_explorer_layer_1.png", showing=explorer)
    assert after_pixels != before_pixels, "the browser shows the same heatmap for layers 0 and 1"


def _scaling_numbers(table) -> tuple[float, dict[str, float]]:
    """(budget C, {law: parameters N}) as the ScalingExplorer's table shows them."""
    text = table.inner_text()
    budget = float(re.search(r"C = ([\d.e+]+) FLOPs", text).group(1))
    params = {}
    for row in table.locator("tr").all()[1:]:
        cells = row.locator("td").all_inner_texts()
        params[cells[0].strip()] = _from_human(cells[1].strip())
    return budget, params


def _from_human(text: str) -> float:
    """'1.42T' -> 1.42e12, '67B' -> 6.7e10 (the explorer's _human, inverted)."""
    scale = {"T": 1e12, "B": 1e9, "M": 1e6, "K": 1e3}
    return float(text[:-1]) * scale[text[-1]] if text[-1] in scale else float(text)


@pytest.mark.slow
@needs_browser
def test_lesson_04_compute_slider_updates_the_optimal_models(page, lab):
    from e2e.notebook import Notebook, poll

    from llmcourse.scaling import compute_optimal
    from llmcourse.viz.scaling import _LABELS

    notebook = Notebook(page, lab, "lessons/04_llm_development.ipynb")
    notebook.open()
    notebook.run_cell(notebook.code_cell("ScalingExplorer()"))
    assert notebook.error_outputs() == []

    label = page.locator(".widget-label", has_text="Compute (FLOPs)")
    explorer = notebook.panel.locator(".widget-vbox", has=label)
    compute = explorer.locator(".widget-slider", has=label)
    table = explorer.locator(".widget-html-content", has_text="C = ")
    image = explorer.locator("img.widget-image")
    poll(lambda: _image_loaded(image), 30, "the figure to load", page)
    _assert_not_upscaled(image)
    budget, params = _scaling_numbers(table)
    assert compute.locator(".widget-readout").inner_text().strip() == f"{budget:.2e}"
    before_src = image.get_attribute("src")
    notebook.screenshot(ARTIFACTS / "04_scaling_explorer_before.png", showing=explorer)

    compute.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")  # one step of the slider: 0.05 decades more compute
    poll(lambda: _scaling_numbers(table)[0] != budget, 60, "the table to follow", page)
    # The figure is drawn after the table: wait for it too.
    poll(
        lambda: image.get_attribute("src") != before_src and _image_loaded(image),
        60,
        "the figure for the new budget",
        page,
    )
    new_budget, new_params = _scaling_numbers(table)
    notebook.screenshot(ARTIFACTS / "04_scaling_explorer_after.png", showing=explorer)

    # One step is at most 0.05 decades: the slider snaps to its grid (1e18 · 10^0.05k).
    assert budget < new_budget <= budget * 10**0.05 * 1.01
    assert compute.locator(".widget-readout").inner_text().strip() == f"{new_budget:.2e}"
    for method, label_text in _LABELS.items():
        expected = compute_optimal(new_budget, method).n_params
        # The table rounds to 3 significant figures, C included.
        assert math.isclose(new_params[label_text], expected, rel_tol=0.01), method
        assert new_params[label_text] > params[label_text], f"{method}: more compute, bigger N"


def _solution_cell(path: Path, defines: str) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    (source,) = [source for source in sources if f"def {defines}(" in source]
    return source


WRONG_NEXT_TOKEN = """def next_token_distribution(logits, temperature=1.0):
    weights = logits.exp()  # forgets the temperature and overflows on large logits
    return weights / weights.sum(dim=-1, keepdim=True)
"""


@pytest.mark.slow
@needs_browser
def test_exercise_check_table_and_progress(page, lab):
    from e2e.notebook import Notebook

    notebook = Notebook(page, lab, "exercises/01_course_overview.ipynb")
    notebook.open()
    notebook.run_cell(notebook.code_cell("from llmcourse.grading import check"))
    answer = notebook.code_cell("def next_token_distribution")
    check = notebook.code_cell('check("01.next_token", globals())')

    def graded(source: str) -> list[list[str]]:
        notebook.type_into(answer, source)
        notebook.run_cell(answer)
        notebook.run_cell(check)
        rows = check.locator(".jp-OutputArea-output tbody tr").all()
        return [row.locator("td").all_inner_texts() for row in rows]

    rows = graded(WRONG_NEXT_TOKEN)
    notebook.screenshot(ARTIFACTS / "exercise_01_check_wrong.png", showing=answer)
    summary = check.locator(".jp-OutputArea-output").inner_text()
    assert "01.next_token: 1/3 points (keep going)" in summary
    marks = [mark for _, _, mark, _ in rows]
    assert marks == ["✓", "✗", "✗"], rows
    assert "Divide the logits by the temperature" in rows[1][3]
    assert "Hint:" in rows[2][3] and "subtract each row's maximum" in rows[2][3]

    solution = _solution_cell(
        ROOT / "solutions" / "01_course_overview.ipynb", "next_token_distribution"
    )
    rows = graded(solution)
    notebook.screenshot(ARTIFACTS / "exercise_01_check_solved.png", showing=answer)
    assert "01.next_token: 3/3 points (all tests pass)" in check.inner_text()
    assert [mark for _, _, mark, _ in rows] == ["✓", "✓", "✓"]

    # `make lab` does not activate .venv: the shell command must still find the course's CLI.
    progress = notebook.add_cell_at_end("!llmcourse progress")
    notebook.run_cell(progress, timeout=120)
    report = progress.locator(".jp-OutputArea-output").inner_text()
    notebook.screenshot(ARTIFACTS / "exercise_01_progress.png", showing=progress)
    assert re.search(r"Lesson 01\s+3/11\s+points\s+1 of 4 exercises done", report), report
    assert "left: 01.sequence_log_prob (not tried)" in report
    assert "left: 01.next_token" not in report


def test_skip_reason_names_a_missing_llmcourse_chromium(monkeypatch, tmp_path):
    pytest.importorskip("playwright")
    missing = tmp_path / "no-such-chrome"
    monkeypatch.setenv("LLMCOURSE_CHROMIUM", str(missing))
    assert find_chromium() is None
    reason = unavailable_reason()
    assert f"LLMCOURSE_CHROMIUM={missing} is not an executable file" in reason
    assert "unset it to use /usr/bin/chromium" in reason


def test_skip_reason_says_how_to_install_chromium(monkeypatch, tmp_path):
    pytest.importorskip("playwright")
    monkeypatch.delenv("LLMCOURSE_CHROMIUM", raising=False)
    monkeypatch.setattr(browser_module, "DEFAULT_CHROMIUM", str(tmp_path / "chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing called chromium on PATH either
    reason = unavailable_reason()
    assert reason.startswith(f"no Chromium at {tmp_path / 'chromium'} or on PATH")
    assert "apt-get install chromium" in reason and "LLMCOURSE_CHROMIUM" in reason


def test_skip_reason_names_a_missing_playwright(monkeypatch):
    monkeypatch.setitem(sys.modules, "playwright", None)  # as if it were not installed
    assert "'playwright' is missing: install the dev extra" in unavailable_reason()


def test_llmcourse_chromium_picks_the_binary(monkeypatch, tmp_path):
    binary = tmp_path / "chrome"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setenv("LLMCOURSE_CHROMIUM", str(binary))
    assert find_chromium() is None, "a file that cannot be executed is no browser"
    binary.chmod(0o755)
    assert find_chromium() == binary
