"""Pre-training objectives against transformers' own losses, explicit formulas and properties."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.bert.modeling_bert import BertOnlyNSPHead, BertPooler

from llmcourse.nn.attention import scaled_dot_product_attention
from llmcourse.nn.masks import causal_mask
from llmcourse.train import (
    NextSentenceHead,
    causal_lm_loss,
    info_nce_loss,
    masked_lm_loss,
    next_sentence_loss,
    next_sentence_pairs,
    permutation_masks,
    prefix_lm_labels,
    prefix_lm_mask,
    seq2seq_lm_loss,
    shift_right,
    smoothed_cross_entropy,
    token_cross_entropy,
)
from llmcourse.train.permutation import factorization_order, partial_prediction_targets
from llmcourse.train.sentence_objectives import IS_NEXT, NOT_NEXT

STD = {"initializer_range": 0.2}


def _labels_with_padding(shape, vocab, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, shape, generator=generator)
    labels[0, -3:] = -100  # right padding
    labels[1, :2] = -100  # an SFT prompt
    return labels


def test_causal_lm_loss_matches_gpt2_lm_head_loss():
    torch.manual_seed(0)
    hf = tf.GPT2LMHeadModel(
        tf.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=1, n_head=2, **STD)
    ).eval()
    ids = torch.randint(0, 97, (3, 12))
    labels = _labels_with_padding((3, 12), 97)
    with torch.no_grad():
        output = hf(ids, labels=labels)
    torch.testing.assert_close(causal_lm_loss(output.logits, labels), output.loss)


def test_causal_lm_loss_is_the_mean_negative_log_likelihood_of_the_next_token():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7, dtype=torch.float64)
    labels = torch.randint(0, 7, (2, 5))
    labels[1, 3] = -100
    log_probs = torch.log_softmax(logits, -1).numpy()
    terms = [
        -log_probs[b, t, labels[b, t + 1]]
        for b in range(2)
        for t in range(4)
        if labels[b, t + 1] != -100
    ]
    assert causal_lm_loss(logits, labels).item() == pytest.approx(np.mean(terms), rel=1e-6)
    total = causal_lm_loss(logits, labels, reduction="sum").item()
    assert total == pytest.approx(np.sum(terms), rel=1e-6)
    assert causal_lm_loss(logits, labels, reduction="none").shape == (2, 4)


def test_masked_lm_loss_matches_bert_for_masked_lm():
    torch.manual_seed(2)
    hf = tf.BertForMaskedLM(
        tf.BertConfig(
            vocab_size=97,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            **STD,
        )
    ).eval()
    ids = torch.randint(0, 97, (2, 10))
    labels = torch.full_like(ids, -100)
    labels[:, [1, 4, 7]] = ids[:, [1, 4, 7]]
    with torch.no_grad():
        output = hf(ids, labels=labels)
    torch.testing.assert_close(masked_lm_loss(output.logits, labels), output.loss)


def test_seq2seq_loss_and_shift_right_match_t5():
    torch.manual_seed(3)
    hf = tf.T5ForConditionalGeneration(
        tf.T5Config(
            vocab_size=97,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
        )
    ).eval()
    source = torch.randint(2, 97, (2, 9))
    labels = torch.randint(2, 97, (2, 6))
    labels[0, -2:] = -100
    decoder_ids = shift_right(labels, start_id=0, pad_id=0)
    torch.testing.assert_close(decoder_ids, hf._shift_right(labels))
    with torch.no_grad():
        output = hf(input_ids=source, labels=labels)
    torch.testing.assert_close(seq2seq_lm_loss(output.logits, labels), output.loss)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_label_smoothing_formula_matches_torch(epsilon):
    torch.manual_seed(4)
    logits, targets = torch.randn(20, 11), torch.randint(0, 11, (20,))
    expected = F.cross_entropy(logits, targets, label_smoothing=epsilon)
    torch.testing.assert_close(smoothed_cross_entropy(logits, targets, epsilon), expected)
    fused = token_cross_entropy(logits, targets, label_smoothing=epsilon)
    torch.testing.assert_close(fused, expected)


def test_label_smoothing_raises_the_loss_of_a_confident_correct_model():
    logits = torch.tensor([[20.0, 0.0, 0.0]])
    target = torch.tensor([0])
    assert smoothed_cross_entropy(logits, target, 0.0) < 1e-6
    assert smoothed_cross_entropy(logits, target, 0.1) > 0.5  # ε · mean(-log p) ≈ 0.1 · 13.3


def test_all_ignored_targets_give_zero_not_nan():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    loss = causal_lm_loss(logits, torch.full((1, 4), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_loss_inputs_are_checked():
    with pytest.raises(ValueError, match="disagree"):
        token_cross_entropy(torch.randn(3, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        token_cross_entropy(torch.randn(3, 5), torch.zeros(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        token_cross_entropy(torch.randn(3, 5), torch.zeros(3, dtype=torch.long), label_smoothing=1)
    with pytest.raises(ValueError, match=r"\(batch, seq, vocab\)"):
        causal_lm_loss(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction"):
        token_cross_entropy(torch.randn(3, 5), torch.zeros(3, dtype=torch.long), reduction="avg")


def test_prefix_lm_mask_is_bidirectional_on_the_prefix_and_causal_after():
    mask = prefix_lm_mask(6, torch.tensor([0, 3, 6]))[:, 0]
    assert torch.equal(mask[0], causal_mask(6))  # no prefix: a plain decoder
    assert mask[2].all()  # all prefix: an encoder
    expected = causal_mask(6).clone()
    expected[:3, :3] = True
    assert torch.equal(mask[1], expected)


def test_prefix_lm_attention_sees_later_prefix_tokens_but_never_the_continuation():
    torch.manual_seed(5)
    q, k, v = (torch.randn(1, 1, 6, 4) for _ in range(3))
    mask = prefix_lm_mask(6, torch.tensor([3]))
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    k2, v2 = k.clone(), v.clone()
    k2[..., 2, :] += 1.0  # change the last prefix token
    out_prefix_changed, _ = scaled_dot_product_attention(q, k2, v2, mask)
    assert not torch.allclose(out[..., 0, :], out_prefix_changed[..., 0, :])  # position 0 sees it
    k3, v3 = k.clone(), v.clone()
    k3[..., 4, :] += 1.0
    v3[..., 4, :] += 1.0  # change a continuation token
    out_later_changed, _ = scaled_dot_product_attention(q, k3, v3, mask)
    torch.testing.assert_close(out[..., :4, :], out_later_changed[..., :4, :])


def test_prefix_lm_labels_score_only_the_continuation():
    ids = torch.arange(10, 16).repeat(2, 1)
    labels = prefix_lm_labels(ids, torch.tensor([2, 4]))
    assert labels.tolist() == [[-100, -100, 12, 13, 14, 15], [-100] * 4 + [14, 15]]
    with pytest.raises(ValueError, match="prefix_len"):
        prefix_lm_mask(6, torch.tensor([7]))
    with pytest.raises(ValueError, match="prefix_len"):
        prefix_lm_mask(6, -1)


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(range(7))))
def test_permutation_masks_are_causal_in_the_sampled_order(order):
    order = torch.tensor(order)
    content, query = permutation_masks(order)
    # Re-indexed by the order, the content stream is a causal mask, the query stream strictly so.
    assert torch.equal(content[order][:, order], causal_mask(7))
    assert torch.equal(query[order][:, order], causal_mask(7) & ~torch.eye(7, dtype=torch.bool))
    assert content.diagonal().all() and not query.diagonal().any()
    first = order[0]
    assert not query[first].any()  # the first position predicted sees nothing


def test_permutation_with_identity_order_is_a_causal_lm():
    content, query = permutation_masks(torch.arange(5))
    assert torch.equal(content, causal_mask(5))
    assert torch.equal(query, causal_mask(5).tril(-1))
    order = factorization_order(12, torch.Generator().manual_seed(0))
    targets = partial_prediction_targets(order, k=6)
    assert targets.sum() == 2 and targets[order[-2:]].all()
    with pytest.raises(ValueError, match="permutation"):
        permutation_masks(torch.tensor([0, 0, 1]))


def test_next_sentence_head_matches_bert_pooler_and_nsp_head():
    torch.manual_seed(6)
    config = tf.BertConfig(hidden_size=16)
    pooler, head = BertPooler(config).eval(), BertOnlyNSPHead(config).eval()
    ours = NextSentenceHead(16)
    ours.pooler.load_state_dict(pooler.dense.state_dict())
    ours.classifier.load_state_dict(head.seq_relationship.state_dict())
    hidden = torch.randn(3, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(hidden), head(pooler(hidden)))
    labels = torch.tensor([IS_NEXT, NOT_NEXT, IS_NEXT])
    loss = next_sentence_loss(ours(hidden), labels)
    torch.testing.assert_close(loss, F.cross_entropy(ours(hidden), labels))


def test_next_sentence_pairs_are_half_true_continuations():
    documents = [[f"d{d}s{s}" for s in range(50)] for d in range(4)]
    pairs = next_sentence_pairs(documents, seed=0)
    assert len(pairs) == 4 * 49
    share = sum(label == IS_NEXT for _, _, label in pairs) / len(pairs)
    assert 0.4 < share < 0.6
    for a, b, label in pairs:
        doc_a, index_a = a[1:].split("s")
        doc_b, index_b = b[1:].split("s")
        if label == IS_NEXT:
            assert doc_a == doc_b and int(index_b) == int(index_a) + 1
        else:
            assert doc_a != doc_b
    with pytest.raises(ValueError, match="two non-empty"):
        next_sentence_pairs([["only one document"]])


def test_info_nce_matches_the_explicit_formula():
    torch.manual_seed(7)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    an = a.double().numpy() / np.linalg.norm(a.double().numpy(), axis=1, keepdims=True)
    bn = b.double().numpy() / np.linalg.norm(b.double().numpy(), axis=1, keepdims=True)
    s = an @ bn.T / 0.1
    expected = np.mean([-(s[i, i] - math.log(np.exp(s[i]).sum())) for i in range(6)])
    assert info_nce_loss(a, b, 0.1).item() == pytest.approx(expected, rel=1e-5)
    expected_t = np.mean([-(s[i, i] - math.log(np.exp(s[:, i]).sum())) for i in range(6)])
    symmetric = info_nce_loss(a, b, 0.1, symmetric=True).item()
    assert symmetric == pytest.approx((expected + expected_t) / 2, rel=1e-5)


def test_info_nce_is_small_for_matching_pairs_and_large_for_shuffled_ones():
    vectors = torch.eye(8)
    assert info_nce_loss(vectors, vectors * 3.0, 0.05).item() < 1e-6
    assert info_nce_loss(vectors, vectors.roll(1, 0), 0.05).item() > 10
    with pytest.raises(ValueError, match="same shape"):
        info_nce_loss(torch.randn(3, 4), torch.randn(4, 4))
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(vectors, vectors, 0.0)
