"""Experiment logs as JSON lines: one event per line, readable while the run is still going."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


class RunLog:
    """Append-only log of a run: ``log.write(step=10, loss=2.31)`` adds one JSON line, flushed.

    JSON lines survive a crash (every finished line is valid), are trivial to read from any
    language, and can be tailed while training runs. Under ``torchrun`` only rank 0 writes.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = True) -> None:
        self.path = Path(path)
        self.enabled = int(os.environ.get("RANK", "0")) == 0
        self._start = time.perf_counter()
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115

    def write(self, **record: Any) -> None:
        if not self.enabled:
            return
        record.setdefault("time_s", round(time.perf_counter() - self._start, 3))
        # NaN and infinity are not JSON; other tools would choke on Python's extension.
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self.enabled and not self._file.closed:
            self._file.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def drop_after(path: str | os.PathLike[str], step: int) -> int:
        """Remove the records logged after ``step`` (a resumed run logs them again); returns
        how many. Records without a step, and a missing file, are left alone."""
        path = Path(path)
        if not path.is_file():
            return 0
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not _step_after(line, step)]
        if len(kept) < len(lines):
            partial = path.with_name(path.name + ".partial")
            partial.write_text("".join(kept), encoding="utf-8")
            partial.replace(path)
        return len(lines) - len(kept)

    @staticmethod
    def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """Every complete record; a half-written last line (the run was killed) is skipped."""
        records = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records


def _step_after(line: str, step: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return True  # a half-written line from a killed run
    logged = record.get("step") if isinstance(record, dict) else None
    return isinstance(logged, int) and logged > step
