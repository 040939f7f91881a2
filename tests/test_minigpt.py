"""MiniGPT: the one-file GPT-2 equals DecoderLM (and transformers' GPT-2), is causal, generates
the same greedy text, and is initialised the way its docstring says."""

import math

import pytest
import torch
import transformers as tf

from llmcourse.infer import generate
from llmcourse.models import DecoderLM, zoo
from llmcourse.models.counting import count_parameters
from llmcourse.models.hf import from_hf
from llmcourse.models.minigpt import MiniGPT, MiniGPTConfig
from llmcourse.train import causal_lm_loss

CONFIG = MiniGPTConfig(vocab_size=97, context_length=32, d_model=48, n_layer=3, n_head=4)


def ids(batch=2, seq=20, seed=0, vocab=97):
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def random_decoder(config: MiniGPTConfig = CONFIG, std: float = 0.3) -> DecoderLM:
    """A GPT-2-shaped DecoderLM whose every parameter (norms and biases too) is random and far
    from its initial value, so a wrong copy, a missing scale or a swapped name shows."""
    torch.manual_seed(0)
    model = DecoderLM(config.to_model_config()).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, std)
    return model


def test_from_decoder_lm_gives_the_same_logits():
    decoder = random_decoder()
    mini = MiniGPT.from_decoder_lm(decoder).eval()
    x = ids()
    with torch.no_grad():
        expected, actual = decoder(x).logits, mini(x).logits
    assert expected.abs().max() > 1.0  # logits large enough for an error to matter
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_weights_load_both_ways_by_name():
    mini = MiniGPT(CONFIG).eval()
    decoder = DecoderLM(CONFIG.to_model_config()).eval()
    assert sorted(mini.state_dict()) == sorted(decoder.state_dict())
    decoder.load_state_dict(mini.state_dict())
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(decoder(x).logits, mini(x).logits, atol=1e-5, rtol=0)


def test_equals_transformers_gpt2_through_from_hf():
    """An independent implementation: Hugging Face's GPT2LMHeadModel with random weights."""
    torch.manual_seed(0)
    hf_config = tf.GPT2Config(
        vocab_size=97, n_positions=32, n_embd=48, n_layer=2, n_head=4, initializer_range=0.2
    )
    hf = tf.GPT2LMHeadModel(hf_config).eval()
    mini = MiniGPT.from_decoder_lm(from_hf(hf)).eval()
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(mini(x).logits, hf(x).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("t", [0, 7, 18])
def test_causal_changing_later_tokens_leaves_earlier_logits(t):
    mini = MiniGPT.from_decoder_lm(random_decoder()).eval()
    x = ids(seq=20)
    changed = x.clone()
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % CONFIG.vocab_size
    with torch.no_grad():
        before, after = mini(x).logits, mini(changed).logits
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
    assert (after[:, t + 1 :] - before[:, t + 1 :]).abs().max() > 1e-3  # the rest does change


def test_greedy_generation_equals_decoder_lm():
    decoder = random_decoder(std=0.1)
    mini = MiniGPT.from_decoder_lm(decoder).eval()
    prompt = ids(seq=5)
    ours = mini.generate(prompt, 20, temperature=0)
    theirs = generate(decoder, prompt, 20, temperature=0)
    assert torch.equal(ours, theirs)
    assert len(set(ours[0, 5:].tolist())) > 1  # not a degenerate constant output


def test_sampling_is_seeded_and_respects_top_k_and_the_context():
    mini = MiniGPT.from_decoder_lm(random_decoder()).eval()
    prompt = ids(batch=3, seq=4)

    def draw(seed, **kwargs):
        return mini.generate(prompt, 40, generator=torch.Generator().manual_seed(seed), **kwargs)

    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    assert draw(1).shape == (3, 44)  # longer than context_length=32: the window slides
    with torch.no_grad():
        logits = mini(prompt).logits[:, -1]
    allowed = logits.topk(2).indices
    first = draw(3, top_k=2)[:, 4:5]
    assert (first == allowed).any(dim=1).all()


def test_loss_is_next_token_cross_entropy():
    mini = MiniGPT.from_decoder_lm(random_decoder()).eval()
    x = ids()
    targets = x[:, 1:]
    logits, loss = mini(x[:, :-1], targets)
    torch.testing.assert_close(loss, causal_lm_loss(mini(x).logits, x), atol=1e-5, rtol=0)
    assert mini(x).loss is None and logits.shape == (2, 19, 97)


def test_initialisation_follows_gpt2():
    torch.manual_seed(0)
    config = MiniGPTConfig(vocab_size=500, context_length=64, d_model=256, n_layer=8, n_head=4)
    mini = MiniGPT(config)
    assert mini.lm_head.weight is mini.embed_tokens.weight
    residual = 0.02 / math.sqrt(2 * config.n_layer)
    block = mini.blocks[0]
    for weight, std in [
        (block.attn.q_proj.weight, 0.02),
        (block.mlp.up_proj.weight, 0.02),
        (block.attn.o_proj.weight, residual),
        (block.mlp.down_proj.weight, residual),
        (mini.embed_tokens.weight, 0.02),
    ]:
        assert weight.std().item() == pytest.approx(std, rel=0.05)
    assert torch.all(block.attn.q_proj.bias == 0) and torch.all(block.attn_norm.weight == 1)
    # A model that knows nothing pays ln(vocab) nats per token.
    with torch.no_grad():
        x = ids(seq=64, vocab=500)
        loss = mini(x[:, :-1], x[:, 1:]).loss.item()
    assert abs(loss - math.log(500)) < 0.05


def test_parameter_count_is_gpt2_small():
    with torch.device("meta"):
        mini = MiniGPT(MiniGPTConfig())
    assert sum(p.numel() for p in mini.parameters()) == count_parameters(zoo.get_config("gpt2"))


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="position='rope'"):
        MiniGPT.from_decoder_lm(DecoderLM(CONFIG.to_model_config().replace(position="rope")))
    with pytest.raises(ValueError, match="divisible by n_head"):
        MiniGPTConfig(d_model=50, n_head=4)
    with pytest.raises(ValueError, match="context_length=32"):
        MiniGPT(CONFIG)(ids(seq=33))
