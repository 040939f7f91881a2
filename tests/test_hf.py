"""Logits parity with Hugging Face transformers, both directions, and the course's real models."""

import functools

import pytest
import torch
import transformers as tf

from llmcourse.models import DecoderLM, EncoderLM, Seq2SeqLM
from llmcourse.models.hf import from_hf, load_minilm, load_smollm2, to_hf

ATOL = 1e-4


def tiny_hf_models():
    torch.manual_seed(0)
    std = {"initializer_range": 0.2}  # larger weights than the default 0.02: logits that differ
    llama = {
        "vocab_size": 97,
        "hidden_size": 48,
        "intermediate_size": 80,
        "num_hidden_layers": 2,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,  # GQA: 3 query heads per KV head
        "max_position_embeddings": 64,
        **std,
    }
    return {
        "gpt2": tf.GPT2LMHeadModel(
            tf.GPT2Config(vocab_size=97, n_positions=64, n_embd=48, n_layer=2, n_head=4, **std)
        ),
        "llama-gqa": tf.LlamaForCausalLM(
            tf.LlamaConfig(**llama, tie_word_embeddings=False, rope_theta=500000.0)
        ),
        "mistral-window": tf.MistralForCausalLM(tf.MistralConfig(**llama, sliding_window=5)),
        "bert": tf.BertForMaskedLM(
            tf.BertConfig(
                vocab_size=97,
                hidden_size=48,
                intermediate_size=80,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=64,
                **std,
            )
        ),
    }


MODELS = tiny_hf_models()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
def test_logits_match_transformers(name, impl):
    hf = MODELS[name].eval()
    ours = from_hf(hf)
    ours.attn_impl = impl
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(ids).logits
        actual = ours(ids).logits
    assert expected.std() > 0.1, "random logits too flat to prove anything"
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)


def test_mistral_window_is_really_exercised():
    hf = MODELS["mistral-window"].eval()
    ours = from_hf(hf)
    assert ours.config.sliding_window == 5
    ids = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(2))
    unwindowed = DecoderLM(ours.config.replace(sliding_window=None))
    unwindowed.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert not torch.allclose(unwindowed(ids).logits, hf(ids).logits, atol=ATOL)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "bert"])
def test_padded_batches_match_transformers(name):
    hf = MODELS[name].eval()
    ours = from_hf(hf)
    ids = torch.randint(0, 97, (2, 8), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, :3] = 0  # left padding for decoders
    if name == "bert":
        mask = mask.flip(-1)  # right padding for the encoder
    extra = {}
    if name != "bert":  # transformers counts positions from 0 at the pad; we skip the pads
        extra["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, **extra).logits
        actual = ours(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(actual[real], expected[real], atol=ATOL, rtol=0)


def test_t5_matches_transformers():
    torch.manual_seed(0)
    config = tf.T5Config(
        vocab_size=97, d_model=48, d_kv=8, d_ff=80, num_layers=2, num_heads=6, num_decoder_layers=3
    )
    hf = tf.T5ForConditionalGeneration(config).eval()
    ours = from_hf(hf)
    assert isinstance(ours, Seq2SeqLM)
    source = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(4))
    target = torch.randint(0, 97, (2, 7), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = hf(input_ids=source, decoder_input_ids=target).logits
        torch.testing.assert_close(ours(source, target).logits, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_to_hf_round_trip(name):
    ours = from_hf(MODELS[name].eval())
    back = to_hf(ours)
    assert type(back) is type(MODELS[name])
    ids = torch.randint(0, 97, (1, 9), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, ours(ids).logits, atol=ATOL, rtol=0)


def test_to_hf_refuses_what_transformers_cannot_hold():
    config = from_hf(MODELS["gpt2"]).config.replace(parallel_block=True)
    with pytest.raises(ValueError, match="no transformers twin"):
        to_hf(DecoderLM(config))


def test_from_hf_refuses_unknown_families():
    with pytest.raises(ValueError, match="supported: gpt2, llama"):
        from_hf(
            tf.OPTForCausalLM(
                tf.OPTConfig(
                    hidden_size=16,
                    num_hidden_layers=1,
                    ffn_dim=32,
                    num_attention_heads=2,
                    vocab_size=50,
                    word_embed_proj_dim=16,
                )
            )
        )


@pytest.mark.slow
def test_smollm2_real_weights_match_transformers():
    from llmcourse.pretrained import smollm2_dir

    hf = tf.AutoModelForCausalLM.from_pretrained(smollm2_dir(), local_files_only=True).eval()
    tokenizer = tf.AutoTokenizer.from_pretrained(smollm2_dir(), local_files_only=True)
    ours, our_tokenizer = load_smollm2()
    assert isinstance(ours, DecoderLM) and ours.num_parameters() == 134_515_008
    batch = tokenizer(
        ["The capital of France is", "Once upon a time, in a land far away, there"],
        return_tensors="pt",
        padding=True,
    )
    assert our_tokenizer.padding_side == tokenizer.padding_side
    with torch.no_grad():
        expected = hf(**batch).logits
        actual = ours(batch.input_ids, attention_mask=batch.attention_mask).logits
    real = batch.attention_mask.bool()
    torch.testing.assert_close(actual[real], expected[real], atol=ATOL, rtol=0)


@pytest.mark.slow
def test_minilm_real_weights_match_transformers():
    from llmcourse.pretrained import minilm

    encoder = minilm()
    ours, tokenizer = load_minilm()
    assert isinstance(ours, EncoderLM) and not ours.config.mlm_head
    batch = tokenizer(["attention is all you need", "hi"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = encoder.model(**batch).last_hidden_state
        actual = ours(
            batch.input_ids,
            attention_mask=batch.attention_mask,
            token_type_ids=batch.token_type_ids,
        ).hidden_states
    real = batch.attention_mask.bool()
    torch.testing.assert_close(actual[real], expected[real], atol=ATOL, rtol=0)


# ---- RoPE layouts: weights trained with interleaved pairs (Meta's LLaMA release) -------------


class MetaStyleLlama(torch.nn.Module):
    """A LLaMA written the way Meta's reference ``model.py`` is: RoPE as a complex multiply on
    *neighbouring* channel pairs (``view_as_complex``), names ``wq``/``wk``/``w1``/... The test's
    independent reference for the interleaved layout; it shares no code with llmcourse."""

    def __init__(
        self, vocab: int, dim: int, n_layers: int, n_heads: int, n_kv_heads: int, ffn: int
    ):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        linear = functools.partial(torch.nn.Linear, bias=False)
        self.tok_embeddings = torch.nn.Embedding(vocab, dim)
        self.layers = torch.nn.ModuleList()
        for _ in range(n_layers):
            layer = torch.nn.Module()
            layer.attention_norm = torch.nn.Parameter(1 + 0.1 * torch.randn(dim))
            layer.ffn_norm = torch.nn.Parameter(1 + 0.1 * torch.randn(dim))
            layer.wq, layer.wo = linear(dim, dim), linear(dim, dim)
            layer.wk, layer.wv = (
                linear(dim, n_kv_heads * self.head_dim),
                linear(dim, n_kv_heads * self.head_dim),
            )
            layer.w1, layer.w2, layer.w3 = linear(dim, ffn), linear(ffn, dim), linear(dim, ffn)
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(1 + 0.1 * torch.randn(dim))
        self.output = linear(dim, vocab)

    @staticmethod
    def rms(x, weight, eps=1e-5):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    def rotate(self, x, theta):  # x: (batch, seq, heads, head_dim)
        seq, d = x.shape[1], x.shape[-1]
        freqs = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
        angles = torch.outer(torch.arange(seq).float(), freqs)
        cis = torch.polar(torch.ones_like(angles), angles)[None, :, None, :]
        pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], d // 2, 2))
        return torch.view_as_real(pairs * cis).flatten(3)

    def forward(self, ids, theta):
        batch, seq = ids.shape
        h = self.tok_embeddings(ids)
        causal = torch.full((seq, seq), float("-inf")).triu(1)
        for layer in self.layers:
            x = self.rms(h, layer.attention_norm)
            q = self.rotate(layer.wq(x).view(batch, seq, self.n_heads, -1), theta)
            k = self.rotate(layer.wk(x).view(batch, seq, self.n_kv_heads, -1), theta)
            v = layer.wv(x).view(batch, seq, self.n_kv_heads, -1)
            repeat = self.n_heads // self.n_kv_heads
            k, v = (t.repeat_interleave(repeat, dim=2).transpose(1, 2) for t in (k, v))
            scores = q.transpose(1, 2) @ k.transpose(2, 3) / self.head_dim**0.5 + causal
            out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, -1)
            h = h + layer.wo(out)
            x = self.rms(h, layer.ffn_norm)
            h = h + layer.w2(torch.nn.functional.silu(layer.w1(x)) * layer.w3(x))
        return self.output(self.rms(h, self.norm))


def meta_state_with_our_names(meta: MetaStyleLlama) -> dict[str, torch.Tensor]:
    names = {"tok_embeddings.weight": "embed_tokens.weight", "norm": "final_norm.weight"}
    names["output.weight"] = "lm_head.weight"
    ours = {"wq": "attn.q_proj", "wk": "attn.k_proj", "wv": "attn.v_proj", "wo": "attn.o_proj"}
    ours |= {"w1": "mlp.gate_proj", "w3": "mlp.up_proj", "w2": "mlp.down_proj"}
    for i in range(len(meta.layers)):
        names[f"layers.{i}.attention_norm"] = f"blocks.{i}.attn_norm.weight"
        names[f"layers.{i}.ffn_norm"] = f"blocks.{i}.mlp_norm.weight"
        for theirs, mine in ours.items():
            names[f"layers.{i}.{theirs}.weight"] = f"blocks.{i}.{mine}.weight"
    return {names[name]: tensor for name, tensor in meta.state_dict().items()}


def test_interleaved_rope_weights_load_exactly_after_permutation():
    from llmcourse.config import ModelConfig
    from llmcourse.models.hf import convert_rope_layout

    torch.manual_seed(0)
    theta = 10000.0
    meta = MetaStyleLlama(vocab=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn=96).eval()
    config = ModelConfig(
        vocab_size=97, context_length=64, d_model=64, n_layer=2, n_head=4, n_kv_head=2, d_ff=96,
        norm="rmsnorm", norm_eps=1e-5, mlp="swiglu", bias=False, position="rope",
        rope_theta=theta, tie_embeddings=False,
    )  # fmt: skip
    ids = torch.randint(0, 97, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = meta(ids, theta)
        state = meta_state_with_our_names(meta)
        model = DecoderLM(config).eval()
        model.load_state_dict(convert_rope_layout(state, config, "interleaved", "half"))
        converted = model(ids).logits
        model.load_state_dict(state)  # the same weights, read as if they were half-layout
        unconverted = model(ids).logits
    torch.testing.assert_close(converted, expected, atol=1e-5, rtol=0)
    assert (unconverted - expected).abs().max() > 0.05  # silently wrong without the permutation
    torch.testing.assert_close(
        unconverted[:, 0], expected[:, 0], atol=1e-5, rtol=0
    )  # no rotation at 0


def test_rope_permutations_are_inverses_and_checked():
    from llmcourse.models.hf import permute_rope_weights

    weight = torch.arange(2 * 8 * 3).reshape(16, 3)
    half = permute_rope_weights(weight, 2, "interleaved", "half")
    assert half[:8, 0].tolist() == [0, 6, 12, 18, 3, 9, 15, 21]  # head 0: even rows, then odd
    torch.testing.assert_close(permute_rope_weights(half, 2, "half", "interleaved"), weight)
    bias = torch.arange(16)
    assert permute_rope_weights(bias, 2, "interleaved", "half")[:8].tolist() == [
        0,
        2,
        4,
        6,
        1,
        3,
        5,
        7,
    ]
    with pytest.raises(ValueError, match="'complex' is not a RoPE layout"):
        permute_rope_weights(weight, 2, "complex", "half")
    with pytest.raises(ValueError, match="n_heads=3"):
        permute_rope_weights(weight, 3, "interleaved", "half")
