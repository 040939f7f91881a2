"""Tokens: packing, memory-mapped token files, causal-LM datasets and the MLM/T5/SFT collators."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.data import Document
from llmcourse.data.collators import IGNORE_INDEX, MLMCollator, SFTCollator, mask_tokens
from llmcourse.data.loaders import ContiguousBlocks, RandomWindows, causal_lm_loader
from llmcourse.data.packing import pack, tokenize_documents
from llmcourse.data.span_corruption import (
    SpanCorruptionCollator,
    fill_spans,
    random_spans_noise_mask,
    span_corruption,
)
from llmcourse.data.tokenfile import HEADER_BYTES, TokenFile, token_dtype, write_token_file


class ByteTokenizer:
    """The simplest tokenizer-like object: UTF-8 bytes are ids 0-255, EOS is 256."""

    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


token_lists = st.lists(st.lists(st.integers(0, 255), max_size=40), max_size=30)


# --------------------------------------------------------------------------------------------
# Packing
# --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(token_lists, st.integers(1, 64))
def test_packing_loses_no_tokens(docs, block_size):
    blocks = list(pack(docs, block_size, eos_id=256))
    stream = [t for doc in docs for t in [*doc, 256]]
    assert [t for block in blocks for t in block] == stream
    assert all(len(block) == block_size for block in blocks[:-1])
    assert 0 < len(blocks[-1]) <= block_size if blocks else not stream
    full = list(pack(docs, block_size, eos_id=256, drop_last=True))
    assert full == blocks[: len(stream) // block_size]


def test_tokenize_documents_and_pack_with_a_tokenizer_like_object():
    docs = [Document("hi"), "yo!"]
    ids = list(tokenize_documents(docs, ByteTokenizer()))
    assert ids == [[104, 105], [121, 111, 33]]
    assert list(pack(ids, 4, eos_id=256)) == [[104, 105, 256, 121], [111, 33, 256]]
    with pytest.raises(TypeError, match="encode"):
        list(tokenize_documents(["x"], object()))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_size"):
        list(pack([[1]], 0, eos_id=2))
    with pytest.raises(ValueError, match="eos_id"):
        list(pack([[1]], 4, eos_id=None))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Token files
# --------------------------------------------------------------------------------------------


def test_token_dtype_follows_vocab_size():
    assert token_dtype(257) == np.uint16 and token_dtype(65_536) == np.uint16
    assert token_dtype(65_537) == np.uint32 and token_dtype(50_257) == np.uint16
    with pytest.raises(ValueError, match="positive"):
        token_dtype(0)


@settings(max_examples=40, deadline=None)
@given(token_lists)
def test_token_file_round_trip(tmp_path_factory, docs):
    path = tmp_path_factory.mktemp("tokens") / "train.bin"
    written = write_token_file(path, docs, vocab_size=257, eos_id=256, metadata={"split": "train"})
    stream = [t for doc in docs for t in [*doc, 256]]
    reopened = TokenFile(path)
    assert reopened.tokens.tolist() == stream == written.tokens.tolist()
    assert reopened.n_documents == len(docs) and reopened.eos_id == 256
    assert reopened.metadata == {"split": "train"} and reopened.dtype == np.uint16
    assert path.stat().st_size == HEADER_BYTES + 2 * len(stream)


def test_large_vocabularies_use_uint32(tmp_path):
    docs = [[0, 70_000, 99_999]]
    token_file = write_token_file(tmp_path / "big.bin", docs, vocab_size=100_000, eos_id=5)
    assert token_file.dtype == np.uint32
    assert token_file.tokens.tolist() == [0, 70_000, 99_999, 5]


def test_token_file_bad_input_gives_clear_errors(tmp_path):
    path = tmp_path / "t.bin"
    with pytest.raises(ValueError, match="Document 1 has token id 300"):
        write_token_file(path, [[1, 2], [300]], vocab_size=257)
    assert not path.exists() and not list(tmp_path.iterdir())  # no half-written file
    with pytest.raises(ValueError, match="outside the vocabulary"):
        write_token_file(path, [[1]], vocab_size=257, eos_id=257)
    with pytest.raises(ValueError, match="keep metadata small"):
        write_token_file(path, [[1]], vocab_size=257, metadata={"x": "y" * 2000})

    write_token_file(path, [[1, 2, 3]], vocab_size=257, eos_id=256)
    data = path.read_bytes()
    path.write_bytes(data[:-2])  # truncated: one token short
    with pytest.raises(ValueError, match="promises 4 uint16 tokens"):
        TokenFile(path)
    path.write_bytes(data + b"\0\0")  # appended to
    with pytest.raises(ValueError, match="truncated or appended"):
        TokenFile(path)
    path.write_bytes(b"not a token file" * 100)
    with pytest.raises(ValueError, match="not an llmcourse token file"):
        TokenFile(path)
    path.write_bytes(data[:8] + b"{broken" + data[15:])
    with pytest.raises(ValueError, match="header is damaged"):
        TokenFile(path)


def test_empty_corpus_and_pickling(tmp_path):
    empty = write_token_file(tmp_path / "empty.bin", [], vocab_size=10)
    assert len(empty) == 0 and empty.n_documents == 0
    full = write_token_file(tmp_path / "full.bin", [[1, 2, 3]], vocab_size=10, eos_id=0)
    clone = pickle.loads(pickle.dumps(full))
    assert clone.tokens.tolist() == [1, 2, 3, 0] and "full.bin" in repr(clone)


# --------------------------------------------------------------------------------------------
# Causal-LM datasets
# --------------------------------------------------------------------------------------------


def test_random_windows_are_deterministic_slices(tmp_path):
    tokens = np.arange(1000) % 257
    token_file = write_token_file(tmp_path / "c.bin", [tokens.tolist()], vocab_size=257)
    dataset = RandomWindows(token_file, context_length=16, num_samples=50, seed=3)
    again = RandomWindows(tokens, context_length=16, num_samples=50, seed=3)
    for index in range(50):
        item = dataset[index]
        start = int(dataset.offsets[index])
        assert item["input_ids"].dtype == torch.long and item["input_ids"].shape == (16,)
        assert item["input_ids"].tolist() == tokens[start : start + 16].tolist()
        assert torch.equal(item["labels"], item["input_ids"])
        assert torch.equal(again[index]["input_ids"], item["input_ids"])
    assert not np.array_equal(RandomWindows(tokens, 16, 50, seed=4).offsets, dataset.offsets)
    copied = pickle.loads(pickle.dumps(dataset))  # what a DataLoader worker receives
    assert torch.equal(copied[7]["input_ids"], dataset[7]["input_ids"])
    batch = next(iter(causal_lm_loader(token_file, 16, batch_size=4, num_samples=8, seed=3)))
    assert batch["input_ids"].shape == (4, 16)
    assert torch.equal(batch["input_ids"][0], dataset[0]["input_ids"])


def test_contiguous_blocks_cover_the_corpus_in_order():
    tokens = torch.arange(103)
    blocks = ContiguousBlocks(tokens, context_length=10)
    assert len(blocks) == 10
    assert torch.cat([blocks[i]["input_ids"] for i in range(10)]).tolist() == list(range(100))
    with pytest.raises(IndexError):
        blocks[10]


def test_dataset_errors():
    with pytest.raises(ValueError, match="fewer than one window"):
        RandomWindows(np.arange(5), context_length=8, num_samples=1)
    with pytest.raises(ValueError, match="1-D array"):
        RandomWindows(np.zeros((2, 8), dtype=np.int64), context_length=4, num_samples=1)


# --------------------------------------------------------------------------------------------
# Masked LM (BERT 80/10/10), with parity against transformers
# --------------------------------------------------------------------------------------------


def tiny_bert_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    vocab.update({f"w{i}": i for i in range(5, 50)})
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="[UNK]")),
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def test_mlm_collator_matches_transformers_exactly():
    from transformers import DataCollatorForLanguageModeling

    tokenizer = tiny_bert_tokenizer()
    rng = np.random.default_rng(0)
    examples = [
        {"input_ids": [2, *rng.integers(5, 50, size=n).tolist(), 3]} for n in (30, 12, 25, 30)
    ]
    theirs = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=11)(examples)
    ours = MLMCollator(
        vocab_size=len(tokenizer),
        mask_id=4,
        pad_id=0,
        special_ids=[1, 2, 3, 4],
        generator=torch.Generator().manual_seed(11),
    )(examples)
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(ours[key], theirs[key]), key


def test_mlm_masking_proportions_are_80_10_10():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (64, 512), generator=generator)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    inputs, labels = mask_tokens(ids, 1000, mask_id=3, special_mask=special, generator=generator)
    selected = labels != IGNORE_INDEX
    n = selected.sum().item()
    assert not selected[:, 0].any()
    assert abs(n / (64 * 511) - 0.15) < 0.01
    masked = (inputs == 3) & selected
    unchanged = (inputs == ids) & selected
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    assert abs(unchanged.sum().item() / n - 0.1 - 0.1 / 1000 * 0.9) < 0.02
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])


# --------------------------------------------------------------------------------------------
# T5 span corruption
# --------------------------------------------------------------------------------------------

SENTINELS = list(range(32099, 31999, -1))  # T5's <extra_id_0>, <extra_id_1>, ...


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 31999), min_size=2, max_size=300), st.integers(0, 2**31))
def test_span_corruption_round_trips(ids, seed):
    generator = torch.Generator().manual_seed(seed)
    inputs, targets = span_corruption(ids, SENTINELS, eos_id=1, generator=generator)
    assert fill_spans(inputs, targets, SENTINELS, eos_id=1) == ids
    assert inputs[-1] == targets[-1] == 1
    n_spans = sum(t in SENTINELS for t in inputs)
    assert inputs[0] not in SENTINELS  # T5 starts with kept text
    assert [t for t in targets if t in SENTINELS] == SENTINELS[:n_spans]
    hidden = len(targets) - 1 - n_spans
    assert hidden == min(max(round(len(ids) * 0.15), 1), len(ids) - 1)


def test_noise_mask_statistics_match_t5_settings():
    generator = torch.Generator().manual_seed(0)
    spans, noise = [], 0
    for _ in range(300):
        mask = random_spans_noise_mask(512, generator=generator).tolist()
        noise += sum(mask)
        runs, length = [], 0
        for hidden in [*mask, False]:
            if hidden:
                length += 1
            elif length:
                runs.append(length)
                length = 0
        spans.extend(runs)
        assert len(runs) == round(round(512 * 0.15) / 3)
    assert noise == 300 * round(512 * 0.15)
    assert np.mean(spans) == pytest.approx(77 / 26)  # 77 noise tokens in 26 spans
    assert Counter(spans)[1] > 0 and max(spans) > 6  # lengths vary, as in T5


def test_span_corruption_collator_and_errors():
    collator = SpanCorruptionCollator(
        SENTINELS, eos_id=1, pad_id=0, generator=torch.Generator().manual_seed(0)
    )
    batch = collator([list(range(100, 160)), list(range(200, 220))])
    assert batch["input_ids"].shape[0] == 2 and batch["labels"].shape[0] == 2
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
    assert (batch["labels"][1] == IGNORE_INDEX).any()
    with pytest.raises(ValueError, match="not enough"):
        span_corruption(list(range(200)), SENTINELS[:2], eos_id=1)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        random_spans_noise_mask(1)


# --------------------------------------------------------------------------------------------
# Supervised fine-tuning
# --------------------------------------------------------------------------------------------


def test_sft_collator_masks_prompt_and_padding():
    batch = SFTCollator(pad_id=0)(
        [
            {"prompt_ids": [5, 6, 7], "response_ids": [8, 9, 2]},
            {"prompt_ids": [5], "response_ids": [3, 2]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 2], [5, 3, 2, 0, 0, 0]]
    assert batch["labels"].tolist() == [
        [-100, -100, -100, 8, 9, 2],
        [-100, 3, 2, -100, -100, -100],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    cut = SFTCollator(pad_id=0, max_length=4)([{"prompt_ids": [5, 6, 7], "response_ids": [8, 9]}])
    assert cut["input_ids"].tolist() == [[5, 6, 7, 8]] and cut["labels"].tolist() == [
        [-100, -100, -100, 8]
    ]
    with pytest.raises(KeyError, match="prompt_ids"):
        SFTCollator(pad_id=0)([{"input_ids": [1]}])
    with pytest.raises(ValueError, match="empty batch"):
        SFTCollator(pad_id=0)([])
