"""SFT, distillation, classification heads and seq2seq decoding (llmcourse.train.sft/distill/
heads/seq2seq)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmcourse.config import ModelConfig
from llmcourse.data.collators import SFTCollator
from llmcourse.data.instructions import ALPACA, InstructionExample
from llmcourse.models import DecoderLM, EncoderLM, Seq2SeqLM
from llmcourse.tokenizers import CharTokenizer
from llmcourse.train import TrainConfig, Trainer, causal_lm_loss, distillation_loss, sft_labels
from llmcourse.train.batches import TensorRows
from llmcourse.train.distill import DistillationTask, causal_distillation_loss
from llmcourse.train.heads import (
    ClassificationCollator,
    ClassificationTask,
    SequenceClassifier,
    classification_metrics,
    predict,
)
from llmcourse.train.logprobs import sequence_logprobs
from llmcourse.train.seq2seq import greedy_decode, pair_batch, translate_words
from llmcourse.train.sft import (
    SFTDataset,
    choice_accuracy,
    choice_logprobs,
    pack_examples,
    response_nll,
    sft_example,
)

TOKENIZER = CharTokenizer().train(
    ALPACA.prompt + "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ?:."
)


def decoder(vocab: int = TOKENIZER.vocab_size, context: int = 128, seed: int = 0) -> DecoderLM:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab,
        context_length=context,
        d_model=32,
        n_layer=2,
        n_head=4,
        position="rope",
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
    )
    return DecoderLM(config)


class AlwaysToken(torch.nn.Module):
    """A stand-in language model whose next-token distribution always favours one token."""

    def __init__(self, token: int, vocab: int) -> None:
        super().__init__()
        self.logits = torch.zeros(vocab)
        self.logits[token] = 5.0

    def forward(self, input_ids, attention_mask=None):
        return self.logits.expand(*input_ids.shape, -1)


EXAMPLES = [
    InstructionExample("Who speaks?", "A: hi\nB: yo\n?: ok", "A", "speaker", "x", ("A", "B")),
    InstructionExample("Who speaks?", "A: no\nB: so\n?: go", "B", "speaker", "x", ("A", "B")),
]


# ---- SFT ----------------------------------------------------------------------------------------


def test_sft_labels_mask_the_prompt():
    assert sft_labels([1, 2, 3], [4, 5]) == ([1, 2, 3, 4, 5], [-100, -100, -100, 4, 5])


def test_sft_loss_counts_only_response_tokens():
    item = sft_example(TOKENIZER, ALPACA, EXAMPLES[0])
    assert TOKENIZER.decode(item["response_ids"]) == "A\n"
    batch = SFTCollator(pad_id=0)([item])
    model = decoder()
    logits = model(batch["input_ids"]).logits
    loss = causal_lm_loss(logits, batch["labels"])
    n_prompt = len(item["prompt_ids"])
    manual = F.cross_entropy(logits[0, n_prompt - 1 : -1], batch["input_ids"][0, n_prompt:])
    torch.testing.assert_close(loss, manual)
    logp = sequence_logprobs(model, batch["input_ids"], batch["labels"])
    torch.testing.assert_close(-logp / 2, manual.reshape(1))


def test_too_long_examples_raise_or_are_skipped():
    with pytest.raises(ValueError, match="exceed the context of 20"):
        sft_example(TOKENIZER, ALPACA, EXAMPLES[0], max_length=20)
    with pytest.raises(ValueError, match="exceed"):
        SFTDataset(TOKENIZER, ALPACA, EXAMPLES, max_length=20)
    with pytest.raises(ValueError, match="No example fits"):
        SFTDataset(TOKENIZER, ALPACA, EXAMPLES, max_length=20, skip_too_long=True)
    fits = SFTDataset(TOKENIZER, ALPACA, EXAMPLES, max_length=128, skip_too_long=True)
    assert len(fits) == 2 and fits.skipped == 0


def test_packing_keeps_each_examples_labels():
    items = [
        {"prompt_ids": [1, 2], "response_ids": [3]},
        {"prompt_ids": [4], "response_ids": [5, 6]},
    ]
    rows = pack_examples(items, block_size=8, pad_id=0)
    assert len(rows) == 1
    assert rows[0]["input_ids"].tolist() == [1, 2, 3, 4, 5, 6, 0, 0]
    assert rows[0]["labels"].tolist() == [-100, -100, 3, -100, 5, 6, -100, -100]
    assert rows[0]["attention_mask"].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert len(pack_examples(items, block_size=4, pad_id=0)) == 2
    with pytest.raises(ValueError, match="block_size"):
        pack_examples(items, block_size=2, pad_id=0)


def test_choice_accuracy_ranks_answers_by_likelihood():
    model = decoder()
    scores = choice_logprobs(model, TOKENIZER, ALPACA, EXAMPLES[0])
    by_hand = []
    for choice in EXAMPLES[0].choices:
        prompt = TOKENIZER.encode(ALPACA.format_prompt(EXAMPLES[0]))
        response = TOKENIZER.encode(ALPACA.format_response(choice))
        ids = torch.tensor([prompt + response])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(ids).logits[0], -1)
        by_hand.append(
            sum(float(log_probs[len(prompt) + i - 1, t]) for i, t in enumerate(response))
        )
    torch.testing.assert_close(scores, torch.tensor(by_hand), atol=1e-4, rtol=1e-5)
    # Training on the responses lowers their loss.
    dataset = SFTDataset(TOKENIZER, ALPACA, EXAMPLES)
    collate = SFTCollator(pad_id=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    before = response_nll(model, dataset)
    for _ in range(30):
        batch = collate([dataset[0], dataset[1]])
        loss = causal_lm_loss(model(batch["input_ids"]).logits, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert response_nll(model, dataset) < before / 4
    # A model that always prefers "A" is right exactly on the example whose answer is A.
    always_a = AlwaysToken(TOKENIZER.encode("A")[0], TOKENIZER.vocab_size)
    assert choice_accuracy(always_a, TOKENIZER, ALPACA, EXAMPLES) == 0.5
    assert choice_accuracy(always_a, TOKENIZER, ALPACA, EXAMPLES[:1]) == 1.0
    with pytest.raises(ValueError, match="no choices"):
        choice_logprobs(model, TOKENIZER, ALPACA, InstructionExample("Go on.", "", "x"))


def test_batched_choice_scores_equal_one_example_at_a_time():
    """Rows of different lengths share a right-padded batch without changing any score."""
    model = decoder(seed=3)
    examples = [
        *EXAMPLES,
        InstructionExample("Who?", "A: a much longer line here\n?: ok", "B", "s", "x", ("A", "B")),
        InstructionExample("Pick.", "", "yes", "s", "x", ("yes", "no", "maybe")),
    ]
    one_by_one = [choice_logprobs(model, TOKENIZER, ALPACA, e) for e in examples]
    expected = sum(
        e.choices[int(s.argmax())] == e.output for e, s in zip(examples, one_by_one, strict=True)
    ) / len(examples)
    for batch_size in (1, 3, 64):
        assert choice_accuracy(model, TOKENIZER, ALPACA, examples, batch_size) == expected
    from llmcourse.train.sft import _choice_scores

    for batched, single in zip(
        _choice_scores(model, TOKENIZER, ALPACA, examples, batch_size=3), one_by_one, strict=True
    ):
        torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-5)
    model.train()
    choice_accuracy(model, TOKENIZER, ALPACA, examples)
    assert model.training  # restored after scoring in eval mode


# ---- distillation -------------------------------------------------------------------------------


def test_distillation_loss_reduces_to_its_parts():
    student, teacher = torch.randn(3, 5, 11), torch.randn(3, 5, 11)
    labels = torch.randint(0, 11, (3, 5))
    labels[0, :2] = -100
    hard = F.cross_entropy(student.reshape(-1, 11), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(distillation_loss(student, teacher, labels, 3.0, alpha=0.0), hard)
    keep = labels.reshape(-1) != -100
    for temperature in (1.0, 4.0):
        kl = F.kl_div(
            F.log_softmax(student.reshape(-1, 11)[keep] / temperature, -1),
            F.log_softmax(teacher.reshape(-1, 11)[keep] / temperature, -1),
            log_target=True,
            reduction="batchmean",
        )
        soft = distillation_loss(student, teacher, labels, temperature, alpha=1.0)
        torch.testing.assert_close(soft, kl * temperature**2)
    same = distillation_loss(teacher, teacher, labels, 2.0, alpha=1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_distillation_errors():
    with pytest.raises(ValueError, match="same vocabulary"):
        distillation_loss(torch.zeros(2, 5), torch.zeros(2, 6), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(torch.zeros(2, 5), torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), 0)


def test_distill_moves_the_student_towards_the_teacher():
    teacher, student = decoder(vocab=20, seed=1), decoder(vocab=20, seed=2)
    ids = torch.randint(0, 20, (4, 12))

    def gap() -> float:
        with torch.no_grad():
            return float(
                causal_distillation_loss(student(ids).logits, teacher(ids).logits, ids, 1.0, 1.0)
            )

    before = gap()
    config = TrainConfig(max_steps=30, batch_size=4, lr=3e-3, warmup_steps=3, progress_bar=False)
    task = DistillationTask(teacher, temperature=1.0, alpha=1.0)
    result = Trainer(
        student, config, TensorRows({"input_ids": ids, "labels": ids}), task=task
    ).fit()
    assert result.step == 30 and gap() < before / 2
    with pytest.raises(ValueError, match="temperature"):
        DistillationTask(teacher, temperature=0.0)


# ---- classification heads -----------------------------------------------------------------------


def test_classification_metrics_match_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    predicted = torch.randint(0, 3, (200,), generator=generator)
    true = torch.randint(0, 3, (200,), generator=generator)
    ours = classification_metrics(predicted, true, 3)
    assert ours["accuracy"] == pytest.approx(sklearn.accuracy_score(true, predicted))
    assert ours["macro_f1"] == pytest.approx(sklearn.f1_score(true, predicted, average="macro"))
    assert ours["f1"] == pytest.approx(list(sklearn.f1_score(true, predicted, average=None)))
    missing = classification_metrics([0, 0], [0, 0], 2)  # class 1 never occurs
    assert missing["macro_f1"] == pytest.approx(
        sklearn.f1_score([0, 0], [0, 0], average="macro", labels=[0, 1], zero_division=0)
    )


def encoder() -> EncoderLM:
    torch.manual_seed(0)
    config = ModelConfig(
        architecture="encoder", vocab_size=30, context_length=16, d_model=32, n_layer=1,
        n_head=4, mlm_head=False,
    )  # fmt: skip
    return EncoderLM(config)


def test_mean_pooling_ignores_padding_and_the_head_learns():
    model = SequenceClassifier(encoder(), n_classes=2, dropout=0.0).eval()
    ids = torch.randint(1, 30, (1, 6))
    padded = torch.cat((ids, torch.zeros(1, 3, dtype=torch.long)), 1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    torch.testing.assert_close(model(padded, mask), model(ids, torch.ones(1, 6)))
    # Label = whether token 5 occurs: learnable from the pooled features.
    ids = torch.randint(6, 30, (32, 8))
    ids[:16, 3] = 5
    labels = (ids == 5).any(-1).long()
    frozen = SequenceClassifier(encoder(), n_classes=2, freeze_encoder=True)
    assert all(not p.requires_grad for p in frozen.encoder.parameters())
    examples = [{"input_ids": i, "labels": y} for i, y in zip(ids, labels, strict=True)]
    collate = ClassificationCollator(pad_id=0)
    config = TrainConfig(
        max_steps=60, batch_size=32, lr=3e-3, weight_decay=0.0, warmup_steps=0,
        schedule="constant", progress_bar=False,
    )  # fmt: skip
    Trainer(model, config, examples, task=ClassificationTask(), collate_fn=collate).fit()
    predicted, true = predict(model, [collate(examples[:20]), collate(examples[20:])])
    assert torch.equal(true, labels)
    assert classification_metrics(predicted, labels, 2)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="2 classes"):
        SequenceClassifier(encoder(), n_classes=1)


# ---- seq2seq ------------------------------------------------------------------------------------


def test_greedy_decode_with_cache_matches_full_recomputation():
    torch.manual_seed(0)
    config = ModelConfig(
        architecture="encoder-decoder", vocab_size=20, context_length=16, d_model=32, n_layer=1,
        n_head=4, position="sinusoidal", bias=False,
    )  # fmt: skip
    model = Seq2SeqLM(config).eval()
    batch = pair_batch([[3, 4, 5], [6, 7]], [[1], [2]], pad_id=0, eos_id=19)
    assert batch["labels"].tolist() == [[1, 19], [2, 19]]
    decoded = greedy_decode(model, batch["input_ids"], batch["attention_mask"], 6, 0, eos_id=19)
    for row, output in enumerate(decoded):
        tokens = [0]
        source = batch["input_ids"][row : row + 1, : int(batch["attention_mask"][row].sum())]
        for _ in range(6):
            logits = model(source, torch.tensor([tokens])).logits[0, -1]
            token = int(logits.argmax())
            if token == 19:
                break
            tokens.append(token)
        assert output == tokens[1:]
    with pytest.raises(ValueError, match="as many sources"):
        pair_batch([[1]], [[1], [2]], 0, 19)
    with pytest.raises(TypeError, match="Seq2SeqLM"):
        greedy_decode(decoder(), batch["input_ids"], None, 3, 0, 19)


def test_translate_words_decodes_each_word_on_its_own():
    tokenizer = CharTokenizer(special_tokens=["<pad>", "<eos>"], eos_token="<eos>").train(
        "abcdefghij ,."
    )
    pad = tokenizer.encode("<pad>")[0]
    torch.manual_seed(0)
    config = ModelConfig(
        architecture="encoder-decoder",
        vocab_size=tokenizer.vocab_size,
        context_length=8,
        d_model=16,
        n_layer=1,
        n_head=2,
        position="sinusoidal",
        bias=False,
    )
    model = Seq2SeqLM(config)
    lines = ["abc de,", "fgh", ""]
    out = translate_words(model, tokenizer, lines, pad, max_new_tokens=6, batch_size=2)
    assert len(out) == 3 and out[2] == ""
    for line, translated in zip(lines[:2], out, strict=False):
        alone = []
        for word in line.split():
            ids = torch.tensor([tokenizer.encode(word)])
            decoded = greedy_decode(model, ids, torch.ones_like(ids), 6, pad, tokenizer.eos_id)
            alone.append(tokenizer.decode(decoded[0]))
        assert translated == " ".join(alone)
    with pytest.raises(ValueError, match="eos_token"):  # each word must end
        translate_words(model, CharTokenizer().train("abcdefghij ,."), lines, pad)
