"""A ``Pipeline`` chains stages lazily and accounts for every document.

    pipeline = Pipeline([Normalize(), LanguageFilter(["en"]), QualityFilter(), ExactDedup()])
    kept = list(pipeline.run(texts))
    print(pipeline.report)

Documents stream through the stages one at a time (generators all the way), so memory does not
grow with the corpus except for the fingerprints the dedup stages must keep. Each stage's
results are counted as they pass: documents and UTF-8 bytes in and out, how many were changed,
and how many were dropped for which reason. After the run the pipeline checks the books:
for every stage, documents in = documents out + documents dropped. A stage that swallows or
invents documents is a bug, and ``run`` raises instead of reporting wrong numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from llmcourse.data.document import Document, Dropped, Stage, as_document


@dataclass
class StageReport:
    """What one stage did: counts of documents and bytes, and drops by reason."""

    name: str
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    changed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Dropped]] = field(default_factory=dict)  # a few drops per reason

    @property
    def docs_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass
class PipelineReport:
    """Per-stage reports, in pipeline order; ``str(report)`` is a table."""

    stages: list[StageReport]

    def __getitem__(self, name: str) -> StageReport:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"No stage named {name!r}; stages: {[s.name for s in self.stages]}.")

    def dropped(self) -> Counter[str]:
        """All drops, keyed ``"stage/reason"``."""
        return Counter(
            {f"{s.name}/{reason}": n for s in self.stages for reason, n in s.dropped.items()}
        )

    def __str__(self) -> str:
        header = (
            f"{'stage':<14}{'docs in':>9}{'out':>9}{'changed':>9}{'MB in':>9}{'MB out':>9}  dropped"
        )
        lines = [header, "-" * len(header)]
        for s in self.stages:
            reasons = ", ".join(f"{r} {n}" for r, n in s.dropped.most_common()) or "-"
            lines.append(
                f"{s.name:<14}{s.docs_in:>9}{s.docs_out:>9}{s.changed:>9}"
                f"{s.bytes_in / 1e6:>9.2f}{s.bytes_out / 1e6:>9.2f}  {reasons}"
            )
        return "\n".join(lines)


class Pipeline:
    """Run ``stages`` in order over documents; ``report`` fills in as documents flow.

    ``progress=True`` shows a tqdm bar over the input documents with the running count kept;
    the report keeps the first ``examples`` dropped documents of each reason for inspection.
    """

    def __init__(self, stages: Sequence[Stage], progress: bool = True, examples: int = 3) -> None:
        stages = list(stages)
        for stage in stages:
            if not isinstance(stage, Stage):
                raise TypeError(f"{stage!r} is not a Stage (subclass llmcourse.data.Stage).")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"Stage names must be unique to label the report, got {names}.")
        self.stages = stages
        self.progress = progress
        self.examples = examples
        self.report = PipelineReport([StageReport(s.name) for s in stages])

    def run(self, docs: Iterable[Document | str | bytes]) -> Iterator[Document]:
        """Kept documents, lazily. The report is complete (and checked) once this is exhausted."""
        self.report = PipelineReport([StageReport(s.name) for s in self.stages])
        total = len(docs) if isinstance(docs, Sized) else None
        bar = tqdm(total=total, disable=not self.progress, unit="doc", desc="pipeline")

        def source() -> Iterator[Document]:
            for index, item in enumerate(docs):
                bar.update(1)
                yield as_document(item, index)

        stream: Iterable[Document] = source()
        for stage, report in zip(self.stages, self.report.stages, strict=True):
            stream = self._counted(stage, report, stream)
        for kept, document in enumerate(stream, 1):
            bar.set_postfix(kept=kept, refresh=False)
            yield document
        bar.close()
        self._check_books()

    def _counted(
        self, stage: Stage, report: StageReport, stream: Iterable[Document]
    ) -> Iterator[Document]:
        previous: Document | None = None

        def inputs() -> Iterator[Document]:
            nonlocal previous
            for document in stream:
                report.docs_in += 1
                report.bytes_in += document.n_bytes
                previous = document
                yield document

        for result in stage(inputs()):
            if isinstance(result, Dropped):
                report.dropped[result.reason] += 1
                kept_examples = report.examples.setdefault(result.reason, [])
                if len(kept_examples) < self.examples:
                    kept_examples.append(result)
                continue
            if not isinstance(result, Document):
                raise TypeError(
                    f"Stage {stage.name!r} yielded a {type(result).__name__}; stages yield "
                    "Document or Dropped."
                )
            report.docs_out += 1
            report.bytes_out += result.n_bytes
            report.changed += previous is not None and result.text != previous.text
            yield result

    def _check_books(self) -> None:
        for report in self.report.stages:
            if report.docs_in != report.docs_out + report.docs_dropped:
                raise RuntimeError(
                    f"Stage {report.name!r} received {report.docs_in} documents but yielded "
                    f"{report.docs_out} and dropped {report.docs_dropped}: a stage must yield "
                    "exactly one Document or Dropped per document it receives."
                )

    def __repr__(self) -> str:
        return f"Pipeline([{', '.join(type(s).__name__ for s in self.stages)}])"
