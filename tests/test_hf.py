"""Logits parity with Hugging Face transformers, both directions, and the course's real models."""

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
