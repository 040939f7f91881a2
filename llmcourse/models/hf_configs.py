"""Hugging Face ``transformers`` configs <-> ``ModelConfig`` for the families ``hf`` converts.

``config_from_hf`` reads a GPT-2, LLaMA, Mistral, BERT or T5 (v1.0) config (object or dict);
``hf_config`` writes the ``transformers`` config of the same architecture; ``transformers_family``
says which family can hold a ``ModelConfig`` exactly (else a ``ValueError`` naming the mismatch).
"""

from __future__ import annotations

from typing import Any

from llmcourse.config import ModelConfig

GPT2_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
}
GPT2_ACTIVATIONS_BACK = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def config_from_hf(hf_config: Any) -> ModelConfig:
    """A ``ModelConfig`` for a ``transformers`` config (object or dict) of a supported family."""
    get = (
        hf_config.get if isinstance(hf_config, dict) else lambda k, d=None: getattr(hf_config, k, d)
    )
    model_type = get("model_type")
    name = str(get("_name_or_path") or get("name_or_path") or model_type or "hf")
    if model_type == "gpt2":
        act = get("activation_function", "gelu_new")
        if act not in GPT2_ACTIVATIONS or get("scale_attn_by_inverse_layer_idx", False):
            raise ValueError(f"Unsupported GPT-2 variant (activation {act!r}).")
        return ModelConfig(
            name=name,
            vocab_size=get("vocab_size"),
            context_length=get("n_positions"),
            d_model=get("n_embd"),
            n_layer=get("n_layer"),
            n_head=get("n_head"),
            d_ff=get("n_inner"),
            mlp=GPT2_ACTIVATIONS[act],
            norm_eps=get("layer_norm_epsilon"),
            tie_embeddings=get("tie_word_embeddings", True),
        )
    if model_type in ("llama", "mistral"):
        rope = get("rope_parameters") or {"rope_theta": get("rope_theta", 10000.0)}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"RoPE scaling {rope.get('rope_type')!r} is not supported.")
        if bool(get("attention_bias", False)) != bool(get("mlp_bias", False)):
            raise ValueError("attention_bias and mlp_bias must agree (ModelConfig has one bias).")
        if get("hidden_act", "silu") != "silu":
            raise ValueError(
                f"Only SwiGLU (hidden_act='silu') is supported, not {get('hidden_act')!r}."
            )
        return ModelConfig(
            name=name,
            vocab_size=get("vocab_size"),
            context_length=get("max_position_embeddings"),
            d_model=get("hidden_size"),
            n_layer=get("num_hidden_layers"),
            n_head=get("num_attention_heads"),
            n_kv_head=get("num_key_value_heads") or get("num_attention_heads"),
            head_dim=get("head_dim"),
            d_ff=get("intermediate_size"),
            norm="rmsnorm",
            norm_eps=float(get("rms_norm_eps")),
            mlp="swiglu",
            bias=bool(get("attention_bias", False)),
            position="rope",
            rope_theta=float(rope["rope_theta"]),
            sliding_window=get("sliding_window") if model_type == "mistral" else None,
            tie_embeddings=bool(get("tie_word_embeddings", False)),
        )
    if model_type == "bert":
        if get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("Only BERT with absolute (learned) positions is supported.")
        return ModelConfig(
            name=name,
            architecture="encoder",
            vocab_size=get("vocab_size"),
            context_length=get("max_position_embeddings"),
            d_model=get("hidden_size"),
            n_layer=get("num_hidden_layers"),
            n_head=get("num_attention_heads"),
            d_ff=get("intermediate_size"),
            mlp={"gelu_new": "gelu_tanh"}.get(get("hidden_act"), get("hidden_act")),
            norm_eps=get("layer_norm_eps"),
            norm_placement="post",
            type_vocab_size=get("type_vocab_size"),
            embedding_norm=True,
            tie_embeddings=get("tie_word_embeddings", True),
        )
    if model_type == "t5":
        if get("feed_forward_proj", "relu") != "relu":
            raise ValueError("Only T5 v1.0 (feed_forward_proj='relu') is supported.")
        return ModelConfig(
            name=name,
            architecture="encoder-decoder",
            vocab_size=get("vocab_size"),
            context_length=512,  # T5 has no position table; 512 is what it was trained with
            d_model=get("d_model"),
            n_layer=get("num_layers"),
            n_decoder_layer=get("num_decoder_layers"),
            n_head=get("num_heads"),
            head_dim=get("d_kv"),
            d_ff=get("d_ff"),
            norm="rmsnorm",
            norm_eps=get("layer_norm_epsilon"),
            mlp="relu",
            bias=False,
            position="relative",
            relative_buckets=get("relative_attention_num_buckets"),
            relative_max_distance=get("relative_attention_max_distance", 128),
            scale_attention=False,
            tie_embeddings=get("tie_word_embeddings", True),
        )
    raise ValueError(
        f"Cannot convert a {model_type!r} model; supported: gpt2, llama, mistral, bert, t5."
    )


def transformers_family(config: ModelConfig) -> str:
    """Which ``transformers`` family can hold ``config`` exactly (else ``ValueError``)."""

    def need(condition: bool, what: str) -> None:
        if not condition:
            raise ValueError(f"to_hf: config {config.name!r} has no transformers twin: {what}.")

    need(not config.n_expert and not config.parallel_block, "no MoE or parallel blocks")
    if config.architecture == "encoder":
        need(config.norm_placement == "post" and config.position == "learned", "BERT layout")
        need(config.norm == "layernorm" and config.bias and config.embedding_norm, "BERT layout")
        return "bert"
    if config.architecture == "encoder-decoder":
        need(config.position == "relative" and config.mlp == "relu", "T5 v1.0 layout")
        need(config.norm == "rmsnorm" and not config.bias, "T5 v1.0 layout")
        return "t5"
    need(config.norm_placement == "pre", "pre-norm")
    if config.position == "learned":
        need(config.norm == "layernorm" and config.mlp in GPT2_ACTIVATIONS_BACK, "GPT-2 layout")
        need(config.n_kv_head == config.n_head and config.bias, "GPT-2 layout (MHA, biases)")
        need(config.head_dim * config.n_head == config.d_model, "GPT-2 layout")
        return "gpt2"
    need(config.position == "rope" and config.norm == "rmsnorm", "LLaMA layout")
    need(config.mlp == "swiglu" and not config.norm_bias, "LLaMA layout")
    return "mistral" if config.sliding_window else "llama"


def hf_config(config: ModelConfig):
    """The ``transformers`` config of the same architecture (dropout off)."""
    import transformers as tf

    kind = transformers_family(config)
    if kind == "gpt2":
        return tf.GPT2Config(
            vocab_size=config.vocab_size,
            n_positions=config.context_length,
            n_embd=config.d_model,
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_inner=config.d_ff,
            activation_function=GPT2_ACTIVATIONS_BACK[config.mlp],
            layer_norm_epsilon=config.norm_eps,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=config.tie_embeddings,
        )
    if kind in ("llama", "mistral"):
        cls = tf.MistralConfig if kind == "mistral" else tf.LlamaConfig
        extra = (
            {"sliding_window": config.sliding_window}
            if kind == "mistral"
            else {"attention_bias": config.bias, "mlp_bias": config.bias}
        )
        return cls(
            vocab_size=config.vocab_size,
            hidden_size=config.d_model,
            intermediate_size=config.d_ff,
            num_hidden_layers=config.n_layer,
            num_attention_heads=config.n_head,
            num_key_value_heads=config.n_kv_head,
            head_dim=config.head_dim,
            max_position_embeddings=config.context_length,
            rms_norm_eps=config.norm_eps,
            rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
            tie_word_embeddings=config.tie_embeddings,
            **extra,
        )
    if kind == "bert":
        return tf.BertConfig(
            vocab_size=config.vocab_size,
            hidden_size=config.d_model,
            num_hidden_layers=config.n_layer,
            num_attention_heads=config.n_head,
            intermediate_size=config.d_ff,
            hidden_act={"gelu_tanh": "gelu_new"}.get(config.mlp, config.mlp),
            max_position_embeddings=config.context_length,
            type_vocab_size=config.type_vocab_size,
            layer_norm_eps=config.norm_eps,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            tie_word_embeddings=config.tie_embeddings,
        )
    return tf.T5Config(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        d_kv=config.head_dim,
        d_ff=config.d_ff,
        num_layers=config.n_layer,
        num_decoder_layers=config.n_decoder_layer,
        num_heads=config.n_head,
        relative_attention_num_buckets=config.relative_buckets,
        relative_attention_max_distance=config.relative_max_distance,
        layer_norm_epsilon=config.norm_eps,
        feed_forward_proj="relu",
        dropout_rate=0.0,
        tie_word_embeddings=config.tie_embeddings,
    )
