"""Model cards and serving-memory tables, computed from ``llmcourse.models.zoo``.

Every number is derived from a published config (``zoo.get_config``) or card
(``zoo.get_card``): parameter counts by ``counting.count_parameters`` (exact for the
architecture), KV-cache sizes by ``counting.kv_cache_bytes``. Serving needs memory for

    weights:   N · bytes per weight          (2 for fp16, 1 for int8, ~0.5 for int4)
    KV cache:  2 · L · n_kv_head · head_dim · T · batch · bytes per value

and the cache, not the weights, often limits how many requests fit: LLaMA-2-7B holds 0.5 MiB of
fp16 cache per token, so 32 requests of 4096 tokens need 64 GiB on top of 13 GiB of weights
(Kwon et al. 2023 built vLLM's paged attention around this). Grouped-query attention cuts the
cache by ``n_head / n_kv_head`` (8x for LLaMA-2-70B and Mistral-7B).

Rows are plain dicts; ``markdown_table(rows)`` renders them for a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from llmcourse.models import zoo
from llmcourse.models.counting import count_parameters, kv_cache_bytes

GiB = 2**30
#: Bytes per weight of common serving formats (int4 with one fp16 scale per 64 weights).
WEIGHT_BYTES = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5 + 2 / 64}


def attention_kind(n_head: int, n_kv_head: int) -> str:
    """``"MHA"``, ``"MQA"`` or ``"GQA-g"`` (``g`` key/value heads)."""
    if n_kv_head == n_head:
        return "MHA"
    return "MQA" if n_kv_head == 1 else f"GQA-{n_kv_head}"


def model_card_rows(names: Sequence[str] | None = None) -> list[dict]:
    """One row per zoo model: size, data, context and architecture choices."""
    rows = []
    for name in zoo.names() if names is None else names:
        config, card = zoo.get_config(name), zoo.get_card(name)
        params = count_parameters(config)
        tokens = card.training_tokens
        rows.append(
            {
                "model": card.title,
                "year": card.year,
                "params (B)": round(params / 1e9, 3),
                "published (B)": round(card.published_parameters / 1e9, 3),
                "active (B)": round(count_parameters(config, active=True) / 1e9, 3),
                "tokens (B)": None if tokens is None else round(tokens / 1e9),
                "tokens/param": None if tokens is None else round(tokens / params, 1),
                "context": config.context_length,
                "vocab": config.vocab_size,
                "position": config.position,
                "norm": f"{config.norm_placement}-{config.norm}",
                "activation": config.mlp,
                "attention": attention_kind(config.n_head, config.n_kv_head),
                "open weights": card.open_weights,
            }
        )
    return rows


def kv_cache_rows(
    names: Sequence[str] | None = None, dtype: torch.dtype = torch.float16
) -> list[dict]:
    """KV-cache bytes per token and for one full context window, per model (decoders only)."""
    rows = []
    for name in zoo.names() if names is None else names:
        config = zoo.get_config(name)
        if config.architecture != "decoder":
            continue
        per_token = kv_cache_bytes(config, 1, dtype=dtype)
        rows.append(
            {
                "model": zoo.get_card(name).title,
                "layers": config.n_layer,
                "kv heads": f"{config.n_kv_head}/{config.n_head}",
                "head dim": config.head_dim,
                "KiB/token": round(per_token / 2**10, 1),
                "GiB at context": round(per_token * config.context_length / GiB, 2),
                "context": config.context_length,
            }
        )
    return rows


def serving_memory_rows(
    names: Sequence[str],
    seq_len: int,
    batch_size: int,
    weight_formats: Sequence[str] = ("fp16", "int8", "int4"),
    cache_dtype: torch.dtype = torch.float16,
) -> list[dict]:
    """GiB for weights in each format plus an fp16 KV cache for ``batch_size`` sequences of
    ``seq_len`` tokens."""
    unknown = [f for f in weight_formats if f not in WEIGHT_BYTES]
    if unknown:
        raise ValueError(f"Unknown weight formats {unknown}; choose from {list(WEIGHT_BYTES)}.")
    rows = []
    for name in names:
        config = zoo.get_config(name)
        params = count_parameters(config)
        cache = kv_cache_bytes(config, seq_len, batch_size, cache_dtype) / GiB
        row = {"model": zoo.get_card(name).title, "KV cache (GiB)": round(cache, 2)}
        for fmt in weight_formats:
            weights = params * WEIGHT_BYTES[fmt] / GiB
            row[f"{fmt} weights (GiB)"] = round(weights, 2)
            row[f"{fmt} total (GiB)"] = round(weights + cache, 2)
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """Rows of dicts (same keys) as a Markdown table; ``None`` shows as a dash, integers from
    10,000 up get thousands separators."""
    if not rows:
        raise ValueError("markdown_table needs at least one row.")
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [_cell(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:,}"
    return str(value)
