"""Sizes and training tokens of the large models Hoffmann et al. 2022 compare (Table 1).

These are the runs the Chinchilla paper argues were under-trained. Models with a published
architecture live in ``llmcourse.models.zoo`` instead (GPT-3 among them), where ``get_card``
gives their training tokens and ``counting.count_parameters`` their exact size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedRun:
    name: str
    n_params: float
    n_tokens: float
    source: str = "Hoffmann et al. 2022, Table 1"


CHINCHILLA_TABLE_1_RUNS: tuple[PublishedRun, ...] = (
    PublishedRun("Chinchilla 70B", 70e9, 1.4e12),
    PublishedRun("Gopher 280B", 280e9, 300e9),
    PublishedRun("MT-NLG 530B", 530e9, 270e9),
    PublishedRun("Jurassic-1 178B", 178e9, 300e9),
    PublishedRun("LaMDA 137B", 137e9, 168e9),
)
