#!/usr/bin/env python3
"""Strip outputs, execution counts and run metadata from notebooks, in place.

    python tools/strip_notebooks.py lessons exercises solutions

Notebooks are committed clean: diffs stay readable, and a learner's first run is their own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KERNELSPEC = {"name": "llmcourse", "display_name": "Python 3 (llmcourse)", "language": "python"}


def strip(path: Path) -> bool:
    """Clean one notebook; returns True when the file changed."""
    before = path.read_text(encoding="utf-8")
    notebook = json.loads(before)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata", {})
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            metadata.pop(key, None)
    metadata = notebook.setdefault("metadata", {})
    metadata.pop("widgets", None)
    metadata["kernelspec"] = KERNELSPEC
    metadata["language_info"] = {"name": "python"}
    # Sorted keys and one-space indent, as nbformat and JupyterLab write: no churn between tools.
    after = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


def main(folders: list[str]) -> None:
    for folder in folders or ["lessons", "exercises", "solutions"]:
        for path in sorted(Path(folder).glob("*.ipynb")):
            if strip(path):
                print(f"stripped {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
