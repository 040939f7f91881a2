"""DecoderLM, EncoderLM and Seq2SeqLM: both attention paths, caching, padding, checkpointing."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM, EncoderLM, KVCache, Seq2SeqLM

BASE = ModelConfig(vocab_size=64, context_length=32, d_model=32, n_layer=2, n_head=4)
LLAMA = {"norm": "rmsnorm", "mlp": "swiglu", "position": "rope", "bias": False, "n_kv_head": 2}
DECODERS = {
    "gpt2": BASE,
    "llama-gqa": BASE.replace(**LLAMA, tie_embeddings=False),
    "mistral-window": BASE.replace(**LLAMA, sliding_window=4),
    "jais-alibi": BASE.replace(position="alibi", mlp="swiglu"),
    "palm-parallel-mqa": BASE.replace(**LLAMA | {"n_kv_head": 1}, parallel_block=True),
    "mixtral-moe": BASE.replace(**LLAMA, n_expert=4, n_expert_active=2),
    "t5-relative": BASE.replace(position="relative", norm="rmsnorm", bias=False),
    "sinusoidal-postnorm": BASE.replace(position="sinusoidal", norm_placement="post"),
}


def ids(batch=2, seq=10, seed=0):
    return torch.randint(0, 64, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=list(DECODERS), ids=list(DECODERS))
def decoder(request):
    torch.manual_seed(0)
    return DecoderLM(DECODERS[request.param]).eval()


def test_logits_shape_and_explicit_path_matches_fast_path(decoder):
    x = ids()
    fast = decoder(x)
    assert fast.logits.shape == (2, 10, 64) and fast.attentions is None
    decoder.attn_impl = "explicit"
    slow = decoder(x, output_attentions=True)
    torch.testing.assert_close(fast.logits, slow.logits, atol=1e-5, rtol=1e-4)
    assert len(slow.attentions) == 2 and slow.attentions[0].shape == (2, 4, 10, 10)
    torch.testing.assert_close(slow.attentions[1].sum(-1), torch.ones(2, 4, 10))


def test_cached_generation_matches_the_full_forward(decoder):
    x = ids()
    full = decoder(x).logits
    cache = KVCache()
    pieces = [decoder(x[:, :4], kv_cache=cache).logits]
    pieces += [decoder(x[:, i : i + 1], kv_cache=cache).logits for i in range(4, 7)]
    pieces.append(decoder(x[:, 7:], kv_cache=cache).logits)  # a chunk after the cache
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-4)
    assert cache.seq_len == 10


def test_causality_future_tokens_do_not_change_the_past(decoder):
    x = ids()
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % 64
    torch.testing.assert_close(decoder(x).logits[:, :6], decoder(y).logits[:, :6])


def test_left_padding_gives_the_unpadded_logits(decoder):
    x = ids(batch=1, seq=6)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], 1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    out = decoder(padded, attention_mask=mask).logits[:, 3:]
    torch.testing.assert_close(out, decoder(x).logits, atol=1e-5, rtol=1e-4)


def test_left_padded_batch_generates_with_a_cache(decoder):
    """Batched generation: the mask covers cached + new tokens; logits match one long forward."""
    x = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids(batch=1, seq=7)], 1)
    x = torch.cat([x, ids(batch=1, seq=9, seed=3)])
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :2] = 0
    full = decoder(x, attention_mask=mask).logits
    cache = KVCache()
    pieces = [decoder(x[:, :5], attention_mask=mask[:, :5], kv_cache=cache).logits]
    for i in range(5, 9):
        step = decoder(x[:, i : i + 1], attention_mask=mask[:, : i + 1], kv_cache=cache)
        pieces.append(step.logits)
    torch.testing.assert_close(torch.cat(pieces, 1)[mask.bool()], full[mask.bool()])


def test_cache_stores_kv_heads_not_query_heads():
    model = DecoderLM(DECODERS["llama-gqa"])
    cache = KVCache()
    model(ids(batch=1, seq=5), kv_cache=cache)
    assert cache.keys[0].shape == (1, 2, 5, 8)  # n_kv_head = 2, head_dim = 8
    assert cache.nbytes == 2 * 2 * 2 * 5 * 8 * 4  # (K and V) x layers x heads x seq x dim x fp32


def test_sliding_window_limits_what_a_token_sees():
    torch.manual_seed(0)
    model = DecoderLM(DECODERS["mistral-window"]).eval()
    x = ids(batch=1)
    y = x.clone()
    y[0, 0] = (y[0, 0] + 1) % 64
    # Position 9 is 9 tokens after position 0: beyond 2 layers x (window 4 - 1) of reach.
    torch.testing.assert_close(model(x).logits[0, 9], model(y).logits[0, 9])
    assert not torch.allclose(model(x).logits[0, 3], model(y).logits[0, 3])


@pytest.mark.parametrize("n_head", [4, 6])  # 6: not a power of two, the slopes interleave
def test_alibi_model_equals_attention_recomputed_with_blooms_alibi(n_head):
    """JAIS-style (ALiBi + SwiGLU): recompute every layer's attention with transformers' BLOOM
    ALiBi tensor and the model's logits come out. BLOOM adds m_h·j, we add -m_h·(i - j): per
    query row they differ by a constant, which the softmax ignores."""
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    from llmcourse.nn.attention import merge_heads, split_heads

    torch.manual_seed(0)
    model = DecoderLM(BASE.replace(position="alibi", mlp="swiglu", n_head=n_head, d_model=48))
    model.eval()
    x = ids(seq=12)
    bloom = build_alibi_tensor(torch.ones(1, 12), n_head, torch.float32).view(1, n_head, 1, 12)
    causal = torch.ones(12, 12, dtype=torch.bool).tril()

    def forward_with(bias):
        def attention(module, args, kwargs, output):
            h = args[0]
            q = split_heads(module.q_proj(h), module.n_head)
            k = split_heads(module.k_proj(h), module.n_head)
            v = split_heads(module.v_proj(h), module.n_head)
            scores = q @ k.transpose(-2, -1) / math.sqrt(module.head_dim) + bias
            weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
            return module.o_proj(merge_heads(weights @ v)), None

        hooks = [b.attn.register_forward_hook(attention, with_kwargs=True) for b in model.blocks]
        try:
            return model(x).logits
        finally:
            for hook in hooks:
                hook.remove()

    with torch.no_grad():
        logits = model(x).logits
        torch.testing.assert_close(logits, forward_with(bloom), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(logits, forward_with(0.0), atol=1e-3)  # the bias matters


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = DecoderLM(DECODERS["llama-gqa"]).train()
    x = ids()

    def grads():
        model.zero_grad()
        logits = model(x).logits
        F.cross_entropy(logits[:, :-1].reshape(-1, 64), x[:, 1:].reshape(-1)).backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.gradient_checkpointing = True
    for a, b in zip(plain, grads(), strict=True):
        torch.testing.assert_close(a, b)


def test_moe_model_reports_its_balancing_loss():
    out = DecoderLM(DECODERS["mixtral-moe"])(ids())
    assert out.aux_loss is not None and out.aux_loss.item() >= 2 * 1.0 - 1e-4  # >= 1 per layer


def test_tied_embeddings_share_one_tensor_and_untied_do_not():
    tied = DecoderLM(BASE)
    assert tied.lm_head.weight is tied.embed_tokens.weight
    untied = DecoderLM(DECODERS["llama-gqa"])
    assert untied.lm_head.weight is not untied.embed_tokens.weight


def test_residual_projections_get_the_scaled_init():
    torch.manual_seed(0)
    model = DecoderLM(BASE.replace(d_model=256, n_head=4, n_layer=8))
    std = model.blocks[0].attn.o_proj.weight.std().item()
    assert std == pytest.approx(0.02 / math.sqrt(16), rel=0.1)
    assert model.blocks[0].attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_save_and_load_round_trip(tmp_path):
    model = DecoderLM(DECODERS["llama-gqa"]).eval()
    model.save_pretrained(tmp_path / "m")
    again = DecoderLM.from_pretrained(tmp_path / "m").eval()
    assert again.config == model.config
    torch.testing.assert_close(again(ids()).logits, model(ids()).logits)
    with pytest.raises(ValueError, match="holds a DecoderLM"):
        EncoderLM.from_pretrained(tmp_path / "m")


def test_encoder_sees_both_sides_and_ignores_padding():
    config = BASE.replace(
        architecture="encoder", norm_placement="post", embedding_norm=True, type_vocab_size=2
    )
    model = EncoderLM(config).eval()
    x = ids(batch=1, seq=6)
    y = x.clone()
    y[0, 5] = (y[0, 5] + 1) % 64
    assert not torch.allclose(model(x).hidden_states[0, 0], model(y).hidden_states[0, 0])
    padded = torch.cat([x, torch.zeros(1, 2, dtype=torch.long)], 1)
    out = model(padded, attention_mask=torch.tensor([[1] * 6 + [0, 0]]))
    torch.testing.assert_close(out.logits[:, :6], model(x).logits, atol=1e-5, rtol=1e-4)
    assert model.mlm_head.decoder.weight is model.embed_tokens.weight
    assert EncoderLM(config.replace(mlm_head=False))(x).logits is None


def test_seq2seq_cache_and_paths_agree():
    config = BASE.replace(
        architecture="encoder-decoder", position="relative", norm="rmsnorm", bias=False
    )
    torch.manual_seed(0)
    model = Seq2SeqLM(config).eval()
    source, target = ids(seq=9), ids(seq=6, seed=1)
    full = model(source, target)
    assert full.logits.shape == (2, 6, 64)
    memory = model.encode(source)
    cache = KVCache()
    steps = [model(None, target[:, :1], encoder_hidden_states=memory, kv_cache=cache)]
    steps += [model(None, target[:, 1:], encoder_hidden_states=memory, kv_cache=cache)]
    torch.testing.assert_close(torch.cat([s.logits for s in steps], 1), full.logits)
    model.attn_impl = "explicit"
    torch.testing.assert_close(model(source, target).logits, full.logits)


@pytest.mark.parametrize("architecture", ["decoder", "encoder", "encoder-decoder"])
def test_padded_batch_runs_on_the_meta_device(architecture, monkeypatch):
    """Meta tensors hold no data but their device is checked, so a forward pass on them finds a
    mask or bias built on another device (Seq2SeqLM.encode once built its mask on the CPU)."""
    from llmcourse.models import decoder, encoder, seq2seq

    for module in (decoder, encoder, seq2seq):  # the id range check reads values meta lacks
        monkeypatch.setattr(module, "check_input_ids", lambda *args, **kwargs: None)
    position = "alibi" if architecture == "encoder" else "relative"  # an additive bias
    config = BASE.replace(architecture=architecture, position=position, norm="rmsnorm")
    model_class = {"decoder": DecoderLM, "encoder": EncoderLM, "encoder-decoder": Seq2SeqLM}
    with torch.device("meta"):
        model = model_class[architecture](config).eval()
        x = torch.zeros(2, 6, dtype=torch.long)
        mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1]])
    if architecture == "encoder-decoder":
        out = model(x, x, attention_mask=mask, decoder_attention_mask=mask)
    else:
        out = model(x, attention_mask=mask)
    assert out.hidden_states.device.type == "meta"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: m(torch.rand(1, 4)), "integer token ids"),
        (lambda m: m(torch.zeros(4, dtype=torch.long)), "unsqueeze"),
        (lambda m: m(torch.full((1, 4), 64)), "vocab_size disagree"),
        (lambda m: m(torch.zeros(1, 33, dtype=torch.long)), "context of 32"),
    ],
    ids=["float-ids", "1d", "out-of-vocab", "too-long"],
)
def test_bad_inputs_say_what_to_change(make, message):
    with pytest.raises(ValueError, match=message):
        make(DecoderLM(BASE))


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"d_model": 30}, "not divisible by n_head"), ({"n_kv_head": 3}, "n_kv_head")],
)
def test_bad_configs_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        DecoderLM(BASE.replace(**changes))


def test_wrong_model_class_for_the_architecture():
    with pytest.raises(ValueError, match="use EncoderLM or Seq2SeqLM"):
        DecoderLM(BASE.replace(architecture="encoder"))
