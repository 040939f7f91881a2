"""Drive one notebook in JupyterLab the way a learner does: menus, clicks and keys.

``Notebook(page, server, "lessons/03_llm_architecture.ipynb").open()`` loads the notebook page
and waits for its kernel; ``run_all()`` uses the Run menu; ``run_cell(cell)`` selects a cell
and presses Shift+Enter; ``type_into(cell, text)`` replaces a cell's code through its editor.
Every wait polls the page and fails with what the page showed instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from playwright.sync_api import Locator, Page

from .server import JupyterLabServer

T = TypeVar("T")
EXECUTED = re.compile(r"^\[\d+\]:$")  # an input prompt after its cell ran: "[12]:"
TRACEBACK = "Traceback (most recent call last)"


def poll(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    page: Page,
    state: Callable[[], object] = lambda: "",
) -> T:
    """Call ``check`` every half second until it returns something truthy, or fail with
    ``what`` was awaited and ``state()``, what the page showed instead."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; {state()}")
        page.wait_for_timeout(500)


def _lines(text: str) -> list[str]:
    """Non-blank lines without trailing spaces (how the editor's DOM and the source compare)."""
    return [line.rstrip() for line in text.splitlines() if line.strip()]


class Notebook:
    """One notebook open in its own JupyterLab page (a fresh workspace: no other tabs)."""

    def __init__(self, page: Page, server: JupyterLabServer, path: str) -> None:
        self.page, self.server, self.path = page, server, path
        cells = json.loads((server.root / path).read_text(encoding="utf-8"))["cells"]
        self.n_code_cells = sum(cell["cell_type"] == "code" for cell in cells)
        self.panel = page.locator(".jp-NotebookPanel")

    def open(self, timeout: float = 120.0) -> None:
        """Load the page and wait until every cell is drawn and the kernel is idle."""
        # `reset` starts from an empty workspace, so notebooks of earlier tests do not reopen.
        self.page.goto(self.server.url(f"lab/tree/{self.path}", "reset"))
        indicator = self.panel.locator(".jp-Notebook-ExecutionIndicator")
        dialog = self.page.locator(".jp-Dialog")

        def ready() -> bool:
            if dialog.count():  # e.g. "Select Kernel" when the notebook's kernel is not found
                raise AssertionError(f"JupyterLab showed a dialog: {dialog.first.inner_text()}")
            return (
                indicator.count() == 1
                and indicator.get_attribute("data-status") == "idle"
                and self.code_cells().count() == self.n_code_cells
            )

        poll(
            ready,
            timeout,
            f"{self.path} to load with an idle kernel",
            self.page,
            lambda: (
                f"{indicator.count()} kernel status indicators, "
                f"{self.code_cells().count()} of {self.n_code_cells} code cells drawn"
            ),
        )

    def kernel_display_name(self) -> str:
        return self.panel.locator(".jp-Toolbar-kernelName").inner_text().strip()

    def code_cells(self) -> Locator:
        return self.panel.locator(".jp-CodeCell")

    def code_cell(self, containing: str) -> Locator:
        """The one code cell whose source contains ``containing``."""
        cell = self.code_cells().filter(
            has=self.page.locator(".jp-InputArea-editor", has_text=containing)
        )
        count = cell.count()
        assert count == 1, f"{count} code cells of {self.path} contain {containing!r}"
        return cell

    def prompts(self) -> list[str]:
        """Every code cell's prompt: ``[ ]:``, ``[*]:`` or ``[12]:``.

        DOM text, not rendered text: JupyterLab skips rendering cells far off screen.
        """
        prompts = self.code_cells().locator(".jp-InputArea-prompt").all_text_contents()
        return [text.strip() for text in prompts]

    def run_all(self, timeout: float) -> float:
        """Run → Run All Cells; seconds until every code cell has run and the kernel is idle."""
        start = time.monotonic()
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.get_by_text("Run All Cells", exact=True).click()
        indicator = self.panel.locator(".jp-Notebook-ExecutionIndicator")

        def finished() -> bool:
            prompts = self.prompts()
            return (
                len(prompts) == self.n_code_cells
                and all(EXECUTED.match(prompt) for prompt in prompts)
                and indicator.get_attribute("data-status") == "idle"
            )

        poll(
            finished,
            timeout,
            f"all {self.n_code_cells} code cells of {self.path} to run",
            self.page,
            lambda: f"kernel {indicator.get_attribute('data-status')}, prompts {self.prompts()}",
        )
        return time.monotonic() - start

    def run_cell(self, cell: Locator, timeout: float = 120.0) -> None:
        """Select ``cell`` (command mode), press Shift+Enter, wait for its new prompt number."""
        prompt = cell.locator(".jp-InputArea-prompt")
        before = prompt.inner_text().strip()
        prompt.click()
        self.page.keyboard.press("Shift+Enter")

        def ran() -> bool:
            now = prompt.inner_text().strip()
            return bool(EXECUTED.match(now)) and now != before

        poll(
            ran,
            timeout,
            f"the cell with prompt {before} to run",
            self.page,
            lambda: f"its prompt shows {prompt.inner_text().strip()}",
        )

    def type_into(self, cell: Locator, source: str) -> None:
        """Replace the cell's code with ``source`` through its editor (select all, then type).

        The text goes in as one input event, as a paste would, so the editor's automatic
        indentation does not indent the typed indentation a second time.
        """
        editor = cell.locator(".jp-InputArea-editor .cm-content")
        editor.click()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.insert_text(source)
        typed = editor.inner_text()
        assert _lines(typed) == _lines(source), f"the editor holds {typed!r}, not {source!r}"

    def add_cell_at_end(self, source: str) -> Locator:
        """Select the last cell, press B for a new cell below, type ``source``."""
        last = self.code_cells().last
        last.locator(".jp-InputArea-prompt").click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")
        new = self.code_cells().nth(self.n_code_cells)
        poll(new.count, 10, "the new cell", self.page)
        self.n_code_cells += 1
        self.type_into(new, source)
        return new

    def error_outputs(self) -> list[str]:
        """Text of every output showing a Python traceback."""
        texts = self.panel.locator(".jp-OutputArea-output").all_text_contents()
        return [text for text in texts if TRACEBACK in text]

    def screenshot(self, path: Path, showing: Locator | None = None) -> None:
        """Save the visible page, scrolled so that ``showing`` (if given) starts at the top."""
        if showing is not None:
            showing.evaluate("node => node.scrollIntoView({block: 'start'})")
            self.page.wait_for_timeout(300)  # cells scrolled into view get drawn
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
