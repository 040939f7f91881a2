"""``show(obj)``: read the package's real source inside a lesson instead of a pasted copy."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any


def source_of(obj: Any) -> tuple[str, str]:
    """``(header, source)`` of a module, class, function, method or ``.py`` file path.

    An instance shows its class's source.
    """
    if isinstance(obj, (str, Path)) and str(obj).endswith(".py"):
        path = Path(obj)
        if not path.is_file():
            raise FileNotFoundError(f"show(): no file at {path.resolve()}.")
        text = path.read_text(encoding="utf-8")
        return f"{path.as_posix()}, lines 1-{len(text.splitlines())}", text
    target = obj
    if not (
        inspect.ismodule(obj)
        or inspect.isclass(obj)
        or inspect.isroutine(obj)
        or isinstance(obj, property)
    ):
        target = type(obj)
    if isinstance(target, property):
        target = target.fget
    target = inspect.unwrap(target)
    try:
        lines, first = inspect.getsourcelines(target)
        path = Path(inspect.getsourcefile(target) or "<unknown>")
    except (OSError, TypeError) as error:
        raise TypeError(
            f"Cannot show the source of {obj!r}: {error}. show() works on Python modules, "
            "classes and functions."
        ) from None
    first = max(first, 1)  # modules report line 0
    location = _short_path(path)
    header = f"{location}, lines {first}-{first + len(lines) - 1}"
    return header, "".join(lines)


def show(obj: Any) -> None:
    """Display ``obj``'s source: highlighted HTML in a notebook, plain text in a terminal."""
    header, source = source_of(obj)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None  # type: ignore[assignment]
    shell = get_ipython() if get_ipython else None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        print(f"# {header}\n{source}")
        return
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    # Inline styles, so the colours survive without any CSS from the notebook front end.
    body = highlight(source, PythonLexer(), HtmlFormatter(noclasses=True, style="friendly"))
    display(
        HTML(
            f'<div class="llmcourse-show"><div style="font:12px monospace;color:#666;'
            f'margin-bottom:2px">{header}</div>{body}</div>'
        )
    )


def _short_path(path: Path) -> str:
    parts = path.parts
    if "llmcourse" in parts:
        index = len(parts) - 1 - parts[::-1].index("llmcourse")
        return "/".join(parts[index:])
    return str(path)
