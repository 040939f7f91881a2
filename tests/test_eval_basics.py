"""The chain rule in code: token log-probabilities and perplexity, checked against transformers."""

import math

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.eval import (
    bits_per_byte_from_loss,
    perplexity,
    perplexity_from_log_probs,
    perplexity_from_loss,
    token_log_probs,
)
from llmcourse.models import DecoderLM


def test_token_log_probs_match_the_cross_entropy_of_a_real_model():
    torch.manual_seed(0)
    model = DecoderLM(
        ModelConfig(vocab_size=40, context_length=32, d_model=32, n_layer=2, n_head=4)
    )
    ids = torch.randint(0, 40, (2, 16))
    logits = model(ids).logits
    lp = token_log_probs(logits, ids)
    assert lp.shape == (2, 15)
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(-lp.mean(), nll)
    assert perplexity_from_log_probs(lp[0]) == pytest.approx(perplexity(model, ids[0]), rel=1e-5)


def test_uniform_model_has_perplexity_equal_to_its_vocabulary():
    logits = torch.zeros(10, 7)  # every one of 7 tokens equally likely
    lp = token_log_probs(logits, torch.arange(10) % 7)
    assert torch.allclose(lp, torch.full((9,), -math.log(7)))
    assert perplexity_from_log_probs(lp) == pytest.approx(7.0)


def test_shape_mismatch_and_empty_input_are_clear_errors():
    with pytest.raises(ValueError, match="vocabulary axis"):
        token_log_probs(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="zero tokens"):
        perplexity_from_log_probs(torch.empty(0))


def test_perplexity_and_bits_per_byte_from_a_loss():
    assert perplexity_from_loss(math.log(84)) == pytest.approx(84)
    assert perplexity_from_loss(1e6) == math.inf  # not an OverflowError
    assert bits_per_byte_from_loss(math.log(2), 1.0) == pytest.approx(1.0)
    assert bits_per_byte_from_loss(math.log(2) * 4, 4.0) == pytest.approx(1.0)  # 4 bytes/token
    with pytest.raises(ValueError, match="bytes_per_token"):
        bits_per_byte_from_loss(1.0, 0.0)
