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
    def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """Every complete record; a half-written last line (the run was killed) is skipped."""
        records = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records
