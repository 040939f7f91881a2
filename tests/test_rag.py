"""RAG: chunking, BM25 (against rank_bm25), dense cosine search, recall@k, the question set."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.rag import (
    BM25,
    QUESTIONS,
    RAG_TOPICS,
    DenseIndex,
    answer,
    answer_batch,
    answer_is_correct,
    bm25_tokenize,
    build_prompt,
    chunk_documents,
    chunk_text,
    evaluate_answers,
    evaluate_retrieval,
    hit_at_k,
    python_questions,
    rag_corpus,
    recall_at_k,
    relevant_chunks,
)

DOCS = [
    "The break statement terminates the nearest enclosing loop.",
    "The continue statement continues with the next cycle of the loop.",
    "A loop loop loop that repeats the word loop many times, loop.",
    "The pass statement is a null operation; nothing happens.",
    "Deleting an unbound name raises NameError.",
    "The with statement calls __enter__ and __exit__ of a context manager.",
]


paragraph = st.lists(st.text("abcdefgh ", min_size=1, max_size=300), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(paragraph, st.integers(60, 400))
def test_chunks_respect_the_size_and_keep_every_word_in_order(paragraphs, max_chars):
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, max_chars=max_chars, overlap=0)
    longest_word = max((len(w) for w in text.split()), default=0)
    assert all(len(c) <= max(max_chars, longest_word) for c in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split())


def test_long_paragraphs_overlap_and_documents_get_title_headers():
    words = " ".join(f"word{i}" for i in range(200))
    chunks = chunk_text(words, max_chars=200, overlap=50)
    assert len(chunks) > 1
    for left, right in itertools.pairwise(chunks):
        assert left.split()[-1] in right.split()  # the overlap repeats the edge
    docs = chunk_documents({"doc": "The title\n\nBody one.\n\nBody two."}, 100, 0)
    assert [c.text for c in docs] == ["The title\nBody one.\n\nBody two."]
    with pytest.raises(ValueError, match="max_chars"):
        chunk_text("x", max_chars=10)


def test_bm25_matches_rank_bm25():
    rank_bm25 = pytest.importorskip("rank_bm25")
    tokenized = [bm25_tokenize(d) for d in DOCS]
    ours, theirs = BM25(tokenized), rank_bm25.BM25Okapi(tokenized)
    for query in ["loop", "the statement", "NameError unbound name", "enclosing loop break", "x"]:
        terms = bm25_tokenize(query)
        assert ours.scores(terms) == pytest.approx(list(theirs.get_scores(terms)))
    for k1, b in [(0.9, 0.4), (2.0, 1.0), (1.2, 0.0)]:
        ours, theirs = BM25(tokenized, k1=k1, b=b), rank_bm25.BM25Okapi(tokenized, k1=k1, b=b)
        terms = bm25_tokenize("the loop statement")
        assert ours.scores(terms) == pytest.approx(list(theirs.get_scores(terms)))


def test_bm25_by_hand_and_its_errors():
    index = BM25([["a", "b"], ["b", "c", "c"], ["d"]])
    idf_c = math.log(3 - 1 + 0.5) - math.log(1 + 0.5)
    norm = 1.5 * (1 - 0.75 + 0.75 * 3 / 2)
    assert index.score(["c"], 1) == pytest.approx(idf_c * 2 * 2.5 / (2 + norm))
    assert index.search("c c", k=1) == [1]
    with pytest.raises(TypeError, match="tokenized"):
        BM25(["a b"])
    with pytest.raises(TypeError, match="terms"):
        index.scores("a b")


def letter_counts(texts):
    """A toy embedder: letter frequencies (so similar words give similar vectors)."""
    rows = [[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz_"] for t in texts]
    return torch.tensor(rows, dtype=torch.float32) + 1e-3


def test_dense_index_ranks_by_cosine_similarity():
    index = DenseIndex(letter_counts, DOCS)
    sims = index.similarities(DOCS[4])
    expected = torch.nn.functional.cosine_similarity(letter_counts(DOCS), letter_counts([DOCS[4]]))
    torch.testing.assert_close(sims, expected)
    assert index.search(DOCS[4], k=2)[0] == 4
    assert len(index.search("anything", k=100)) == len(DOCS)


def test_recall_and_hit_at_k():
    assert recall_at_k([5, 1, 7, 2], {1, 2}, 1) == 0.0
    assert recall_at_k([5, 1, 7, 2], {1, 2}, 2) == 0.5
    assert recall_at_k([5, 1, 7, 2], {1, 2}, 4) == 1.0
    assert hit_at_k([5, 1], {1, 2}, 2) == 1.0 and hit_at_k([5, 1], {1, 2}, 1) == 0.0
    with pytest.raises(ValueError, match="relevant"):
        recall_at_k([1], set(), 1)


def test_question_set_answers_are_in_their_gold_pages_and_splits_are_disjoint():
    docs = rag_corpus()
    assert set(docs) == set(RAG_TOPICS)
    for q in QUESTIONS:
        assert q.answer in docs[q.topic], q
    dev, test = python_questions("dev"), python_questions("test")
    assert len(dev) + len(test) == len(QUESTIONS) and not set(dev) & set(test)
    chunks = chunk_documents(docs)
    assert all(relevant_chunks(q, chunks) for q in QUESTIONS)


def test_bm25_retrieval_on_the_real_corpus_beats_chance():
    chunks = chunk_documents(rag_corpus())
    index = BM25([bm25_tokenize(c.text) for c in chunks])
    report = evaluate_retrieval(index.search, python_questions("test"), chunks, ks=(1, 5))
    # 248 chunks and ~1.5 relevant each: a random ranking has recall@5 near 0.02.
    assert report.recall[5] > 0.5 and report.hit[5] >= report.recall[5]
    assert report.recall[1] <= report.recall[5]


def test_answers_are_matched_as_whole_words():
    assert answer_is_correct('The "break" statement.', "break")
    assert answer_is_correct("it raises keyerror", "KeyError")
    assert not answer_is_correct("breakpoint()", "break")
    assert answer_is_correct("Use __all__.", "__all__") and not answer_is_correct("all", "__all__")
    messages = build_prompt("Which?", ["passage one", "passage two"])
    assert (
        messages[0]["role"] == "system" and "passage one\n\npassage two" in messages[1]["content"]
    )
    assert "Context" not in build_prompt("Which?")[1]["content"]


class ByteChatTokenizer:
    """UTF-8 bytes as tokens and 256 as EOS, with a plain-text chat template."""

    eos_token_id = 256

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def encode(self, text, add_special_tokens=True):
        return list(text.encode("utf-8"))

    def decode(self, ids, skip_special_tokens=False):
        return bytes(i for i in ids.tolist() if i < 256).decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def tiny_chat_model():
    from llmcourse.config import ModelConfig
    from llmcourse.models import DecoderLM

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=257, context_length=512, d_model=32, n_layer=2, n_head=4)
    return DecoderLM(config).eval()


def test_batched_answers_equal_one_at_a_time(tiny_chat_model):
    """Left padding with its attention mask must not change any row's greedy reply."""
    tokenizer = ByteChatTokenizer()
    conversations = [
        build_prompt("Which?"),
        build_prompt("Which statement ends a loop?", ["The break statement ends a loop."]),
        build_prompt("And which one does nothing at all, when it runs?"),
    ]
    alone = [answer(tiny_chat_model, tokenizer, c, max_new_tokens=6) for c in conversations]
    assert answer_batch(tiny_chat_model, tokenizer, conversations, max_new_tokens=6) == alone
    assert any(alone)  # the comparison is between real replies, not empty strings

    questions = python_questions("test")[:5]
    asked = []

    def retrieve(question):
        asked.append(question)
        return [DOCS[0]]

    reports = [
        evaluate_answers(tiny_chat_model, tokenizer, questions, retrieve, 4, batch_size=b)
        for b in (2, 8)
    ]
    assert reports[0].closed_book == reports[1].closed_book
    assert reports[0].with_context == reports[1].with_context
    assert asked == [q.question for q in questions] * 2
    with pytest.raises(ValueError, match="at least one"):
        answer_batch(tiny_chat_model, tokenizer, [])
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_answers(tiny_chat_model, tokenizer, questions, retrieve, batch_size=0)


@pytest.mark.slow
def test_minilm_retrieves_the_page_that_answers():
    from llmcourse.pretrained import minilm

    docs = rag_corpus(("break", "pass", "del", "with", "assert", "lambda"))
    chunks = chunk_documents(docs)
    index = DenseIndex(minilm().encode, [c.text for c in chunks])
    questions = [q for q in QUESTIONS if q.topic in docs]
    report = evaluate_retrieval(index.search, questions, chunks, ks=(1, 3))
    assert report.hit[3] == 1.0 and report.hit[1] >= 0.75


@pytest.mark.slow
def test_smollm2_answers_with_the_passage_in_its_prompt():
    from llmcourse.models.hf import load_smollm2
    from llmcourse.rag import answer

    model, tokenizer = load_smollm2()
    passage = rag_corpus(("del",))["del"]
    with_passage = build_prompt(QUESTIONS[11].question, [passage[:700]])
    reply = answer(model, tokenizer, with_passage, max_new_tokens=8)
    assert isinstance(reply, str) and reply and not re.search(r"<\|im_(start|end)\|>", reply)
    # In a left-padded batch beside a shorter prompt, the reply is the same.
    replies = answer_batch(
        model, tokenizer, [build_prompt(QUESTIONS[0].question), with_passage], max_new_tokens=8
    )
    assert replies[1] == reply
