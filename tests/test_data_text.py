"""Text stages of llmcourse.data: normalisation, language ID, quality, PII, split, pipeline."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.data import (
    BlocklistFilter,
    C4Filter,
    Document,
    Dropped,
    ExactDedup,
    LanguageFilter,
    NearDedup,
    Normalize,
    PerplexityFilter,
    Pipeline,
    QualityFilter,
    ScrubPII,
    Stage,
    TrainValSplit,
    assign_split,
    documents,
    identify_language,
    normalize_text,
    scrub_pii,
)
from llmcourse.data.c4 import c4_clean, count_sentences
from llmcourse.data.dedup import exact_key
from llmcourse.data.pii import EMAIL, IPV4
from llmcourse.data.quality import (
    GopherThresholds,
    duplicate_fractions,
    duplicate_ngram_char_fraction,
    duplicate_ngram_char_fractions,
    gopher_failure,
    quality_signals,
    top_ngram_char_fraction,
)
from llmcourse.data.synthetic import FOREIGN, dirty_corpus, fake_pii, perturb
from llmcourse.pretrained import python_docs

PROSE = (
    "The interpreter reads the source file and compiles it to bytecode before running it. "
    "When a module is imported for the first time, the compiled form is cached so that the "
    "next import can skip that step and start faster. Names defined at the top level of the "
    "module become attributes of the module object, and other modules can reach them with "
    "the dot notation. This is the reason why it is a good habit to keep the top level of a "
    "module free of work that takes a long time, such as reading large files."
)


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ﬁne ﬂour", "fine flour"),  # ligatures (NFKC)
        ("Ｈｅｌｌｏ　ｗｏｒｌｄ", "Hello world"),  # full-width letters and ideographic space
        ("cafe\u0301", "café"),  # combining accent composes
        ("caf\u200be\u0301", "café"),  # ... even across a removed zero-width space
        ("a\u00a0b\u2009c", "a b c"),  # no-break and thin spaces
        ("one\r\ntwo\rthree\u2028four", "one\ntwo\nthree\nfour"),  # line breaks
        ("bell\x07 nul\x00 bom\ufeff", "bell nul bom"),  # control and format characters
        ("bad \ufffd byte", "bad byte"),  # replacement characters
        ("x  \t  y   \nz\t\n", "x y\nz"),  # inner runs collapse, trailing space goes
        ("def f():\n    return 1", "def f():\n    return 1"),  # indentation stays
        ("a\n\n\n\n\nb", "a\n\nb"),  # at most one blank line
        ("می\u200cخواهم", "می\u200cخواهم"),  # Persian zero-width non-joiner survives
        ("  \n\t ", ""),
    ],
)
def test_normalize_text_examples(raw, clean):
    assert normalize_text(raw) == clean


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_normalize_is_idempotent_and_leaves_no_invisible_characters(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "\r" not in once and "\ufffd" not in once and "\n\n\n" not in once
    assert once == once.strip()
    assert all(line == line.rstrip() for line in once.split("\n"))


def test_normalize_rejects_wrong_arguments():
    with pytest.raises(TypeError, match="expects str"):
        normalize_text(b"bytes")
    with pytest.raises(ValueError, match="form must be"):
        normalize_text("x", form="NFX")
    with pytest.raises(ValueError, match="max_invalid_fraction"):
        Normalize(max_invalid_fraction=2)


def test_normalize_stage_drops_binary_and_empty_documents_with_reasons():
    rng = random.Random(0)
    binary = Document.from_bytes(rng.randbytes(1000), "png")
    assert binary.meta["invalid_bytes"] > 100
    results = list(Normalize()([binary, Document("", "empty"), Document("  \n ", "blank")]))
    assert [r.reason for r in results] == ["binary", "empty", "empty"]
    assert all(isinstance(r, Dropped) for r in results)
    # A few bad bytes in real text are cleaned, not dropped.
    text = Document.from_bytes(PROSE.encode() + b"\xff\xfe" + b" more text.", "mostly-text")
    kept = Normalize().process(text)
    assert isinstance(kept, Document) and "\ufffd" not in kept.text


def test_documents_accepts_mappings_iterables_and_bytes():
    docs = list(documents({"a": "alpha", "b": b"beta"}))
    assert [(d.id, d.text) for d in docs] == [("a", "alpha"), ("b", "beta")]
    assert [d.id for d in documents(["x", "y"])] == ["doc-0", "doc-1"]
    with pytest.raises(TypeError, match="takes Document, str or bytes"):
        list(documents([3]))
    with pytest.raises(TypeError, match="from_bytes"):
        Document(b"raw")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Language identification
# --------------------------------------------------------------------------------------------

SNIPPETS = {
    "en": ["Where is the train station?", "I think so too.", "To be, or not to be."],
    "fr": ["Où est la gare, s'il vous plaît ?", "Je pense que oui.", "Le chat dort."],
    "de": ["Wo ist der Bahnhof, bitte?", "Ich glaube schon.", "Die Katze schläft."],
    "ar": ["أين محطة القطار؟", "اللغة العربية جميلة جدا", "ذهب الولد إلى المدرسة"],
    "ur": ["ریلوے اسٹیشن کہاں ہے؟", "میں بھی یہی سوچتا ہوں", "بلی صوفے پر سو رہی ہے"],
}


def test_language_id_on_paragraphs_is_right_and_confident():
    for language, text in [*FOREIGN.items(), ("en", PROSE)]:
        identified, probability = identify_language(text)
        assert identified == language, (text[:40], identified)
        assert probability > 0.9


def test_language_id_on_short_snippets_is_mostly_right():
    results = [
        identify_language(text)[0] == language
        for language, texts in SNIPPETS.items()
        for text in texts
    ]
    assert sum(results) >= len(results) - 1, results


def test_language_filter_keeps_requested_languages_and_tags_meta():
    docs = [Document(PROSE, "en"), Document(FOREIGN["ar"], "ar"), Document(FOREIGN["fr"], "fr")]
    results = list(LanguageFilter(["en", "ar"])(docs))
    assert [type(r).__name__ for r in results] == ["Document", "Document", "Dropped"]
    assert results[1].meta["language"] == "ar"
    assert results[2].reason == "language"
    unsure = LanguageFilter(["en"], min_confidence=1.0).process(Document("ok", "short"))
    assert isinstance(unsure, Dropped) and unsure.reason.startswith("language")
    with pytest.raises(ValueError, match="Unknown language code"):
        LanguageFilter(["english"])


# --------------------------------------------------------------------------------------------
# Quality heuristics (Gopher) and C4 line rules
# --------------------------------------------------------------------------------------------


def test_repetition_signals_by_hand():
    assert duplicate_fractions(["a", "bb", "a", ""]) == (1 / 3, 1 / 4)
    words = ["the", "cat", "sat", "on", "the", "cat", "mat"]
    # Most frequent 2-gram "the cat" occurs twice: 2 * 6 characters of 20.
    assert top_ngram_char_fraction(words, 2) == pytest.approx(12 / 20)
    assert top_ngram_char_fraction(["a", "b", "c", "d"], 2) == 0.0
    unique = [f"w{i}" for i in range(40)]
    # A text written twice: the second copy is repeated, the first is not.
    assert duplicate_ngram_char_fraction(unique + unique, 5) == pytest.approx(0.5)
    assert duplicate_ngram_char_fraction(unique, 5) == 0.0


def naive_duplicate_ngram_chars(words: list[str], n: int) -> float:
    """The definition, position by position (what the fast version must agree with)."""
    total = sum(map(len, words))
    if len(words) < n or total == 0:
        return 0.0
    seen, covered = set(), [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in seen:
            covered[i : i + n] = [True] * n
        seen.add(tuple(words[i : i + n]))
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c) / total


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "c", "dd", "the"]), max_size=60))
def test_fast_repeated_ngram_fractions_match_the_definition(words):
    fast = duplicate_ngram_char_fractions(words, range(2, 9))
    for n in range(2, 9):
        assert fast[n] == pytest.approx(naive_duplicate_ngram_chars(words, n), abs=1e-12)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Too short to be a page.", "word_count"),
        (" ".join(["a"] * 30 + ["I"] * 30), "mean_word_length"),
        (" ".join(f"extraordinarily{i}" for i in range(60)) + " the and", "mean_word_length"),
        (PROSE + " #tag" * 12, "symbol_ratio"),
        ("\n".join(f"• item number {i} of the list" for i in range(30)), "bullet_lines"),
        (
            "\n".join(
                f"the story goes on with another long chapter {i} in which nothing happens"
                + ("..." if i % 2 else ".")
                for i in range(30)
            ),
            "ellipsis_lines",
        ),
        (PROSE + " " + " ".join(["12345"] * 40), "alpha_words"),
        (" ".join(f"word{i} thing{i}" for i in range(40)), "stop_words"),
        (PROSE + ("\nThe same line, again and again." * 30), "duplicate_lines"),
        (PROSE + " " + "buy cheap flights now " * 20, "top_ngram"),
    ],
)
def test_each_gopher_rule_fires_on_its_own_defect(text, reason):
    failure = gopher_failure(text)
    assert failure is not None and failure[0] == reason, failure


def test_clean_prose_passes_and_repeated_prose_fails_on_repetition():
    assert gopher_failure(PROSE) is None
    doubled = PROSE + "\n\n" + PROSE
    assert gopher_failure(doubled)[0] == "duplicate_lines"
    relaxed = GopherThresholds(
        max_duplicate_lines=1.0,
        max_duplicate_line_chars=1.0,
        max_duplicate_paragraphs=1.0,
        max_duplicate_paragraph_chars=1.0,
    )
    assert gopher_failure(doubled, relaxed)[0] == "duplicate_ngrams"


def test_quality_signals_and_filter_stage_agree():
    signals = quality_signals(PROSE)
    assert signals["words"] == len(PROSE.split()) and signals["stop_words"] == 6
    assert 3 <= signals["mean_word_length"] <= 10
    results = list(QualityFilter()([PROSE, "tiny"]))
    assert isinstance(results[0], Document) and results[1].reason == "word_count"


@pytest.mark.timeout(60)  # a quadratic regex or rule would take hours on these inputs
@pytest.mark.parametrize(
    "text",
    [
        "x" * 2_000_000,  # one 2 MB "word"
        " ".join(["spam"] * 300_000),  # one line, 300k words
        "a" + " " * 1_000_000 + "b",  # a run of spaces inside a line
        "." * 1_000_000 + " end",  # a run of sentence marks
        "a%" * 500_000,  # e-mail-like characters without an @
        "12 " * 300_000,  # digit groups (phone-like)
        "1:" * 500_000,  # colon groups (IPv6-like)
    ],
    ids=["long-word", "long-line", "spaces", "dots", "percent", "digits", "colons"],
)
def test_pathological_inputs_are_handled_in_linear_time(text):
    result = list(full_pipeline().run([text]))
    assert len(result) <= 1
    c4_clean(text)
    scrub_pii(text)


def test_c4_rules():
    page = (
        "Menu\nHome About Contact\n"
        "Please enable JavaScript to see this page properly, thank you.\n"
        "This line ends without punctuation and is removed by the rule\n"
        "The first proper sentence of the article is long enough. It has two sentences.\n"
        "Another line that ends with a full stop is kept here.\n"
    )
    cleaned, failure = c4_clean(page)
    assert failure is None
    assert cleaned.split("\n") == [
        "The first proper sentence of the article is long enough. It has two sentences.",
        "Another line that ends with a full stop is kept here.",
    ]
    assert count_sentences(cleaned) == 3
    assert c4_clean("Lorem ipsum dolor sit amet. " * 5)[1][0] == "lorem_ipsum"
    assert c4_clean("if (x) { y(); } is code. " * 5)[1][0] == "curly_bracket"
    assert c4_clean("One short page with one sentence only.")[1][0] == "too_few_sentences"
    assert isinstance(C4Filter().process(Document(page)), Document)


def test_blocklist_matches_whole_words_and_phrases_ignoring_case():
    stage = BlocklistFilter(["casino", "free money"])
    assert stage.process(Document("Visit our CASINO today")).reason == "blocklist"
    assert stage.process(Document("get free\n money now")).detail == "contains 'free\\n money'"
    assert isinstance(stage.process(Document("casinos and free moneyboxes")), Document)
    with pytest.raises(ValueError, match="empty"):
        BlocklistFilter(["  "])
    with pytest.raises(TypeError, match="list of words"):
        BlocklistFilter("casino")


def test_perplexity_filter_uses_any_scorer():
    stage = PerplexityFilter(lambda text: 10.0 * len(text.split()), max_perplexity=100)
    kept, dropped = stage.process(Document("a b c")), stage.process(Document("a " * 20))
    assert kept.meta["perplexity"] == 30.0
    assert dropped.reason == "perplexity"
    with pytest.raises(ValueError, match="positive"):
        PerplexityFilter(lambda text: float("nan"), 10).process(Document("x"))
    with pytest.raises(ValueError, match="max_perplexity"):
        PerplexityFilter(len, 0)


# --------------------------------------------------------------------------------------------
# PII
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("mail jane.doe+news@example.co.uk now", "mail <EMAIL> now"),
        ("Bob <bob@mail.example.org>.", "Bob <<EMAIL>>."),
        ("server 192.168.1.254, backup 10.0.0.1.", "server <IP_ADDRESS>, backup <IP_ADDRESS>."),
        ("v6 2001:db8::ff00:42:8329 and fe80::1", "v6 <IP_ADDRESS> and <IP_ADDRESS>"),
        ("call +1 (555) 123-4567", "call <PHONE>"),
        ("call 555-123-4567 or 555.123.4567", "call <PHONE> or <PHONE>"),
        ("ring +44 20 7946 0958 today", "ring <PHONE> today"),
        ("tel. (020) 7946 0958", "tel. <PHONE>"),
    ],
)
def test_pii_is_replaced_by_placeholders(text, scrubbed):
    assert scrub_pii(text)[0] == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "On 2024-01-31 at 12:30:45 we shipped version 3.11.2 to 1,234,567 users.",
        "Act 1, Scene 2, lines 1599 to 1601; ratio 3:2; page 12 of 300.",
        "999.1.1.1 is not an address, nor is 1.2.3, and :: is a grammar symbol.",
        "Call me later at home.",
    ],
)
def test_things_that_are_not_pii_survive(text):
    assert scrub_pii(text) == (text, Counter())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.sampled_from(PROSE.split()), max_size=30))
def test_planted_pii_is_always_scrubbed(seed, words):
    rng = random.Random(seed)
    sentence, counts = fake_pii(rng)
    text = " ".join(words[: len(words) // 2]) + " " + sentence + " " + " ".join(words)
    scrubbed, found = scrub_pii(text)
    assert found == Counter(counts)
    assert not EMAIL.search(scrubbed) and not IPV4.search(scrubbed)
    assert sum(c.isdigit() for c in scrubbed) == 0


def test_scrub_stage_records_counts_and_never_drops():
    doc = ScrubPII().process(Document("write to a@b.org or c@d.org"))
    assert doc.text == "write to <EMAIL> or <EMAIL>" and doc.meta["pii"] == {"email": 2}


# --------------------------------------------------------------------------------------------
# Train/validation split
# --------------------------------------------------------------------------------------------


def test_split_depends_only_on_normalised_content():
    rng = random.Random(1)
    texts = [" ".join(rng.choices(PROSE.split(), k=20)) + f" {i}" for i in range(4000)]
    splits = [assign_split(t, 0.1) for t in texts]
    share = splits.count("val") / len(texts)
    assert abs(share - 0.1) < 4 * (0.1 * 0.9 / len(texts)) ** 0.5  # binomial, 4 sigma
    # Copies that differ in case and spacing always land together.
    assert all(
        assign_split(t.upper().replace(" ", "  \n"), 0.1) == s
        for t, s in zip(texts, splits, strict=True)
    )
    # Order does not matter and the seed does.
    shuffled = texts[::-1]
    assert [assign_split(t, 0.1) for t in shuffled] == splits[::-1]
    assert [assign_split(t, 0.1, seed=7) for t in texts] != splits
    with pytest.raises(ValueError, match="val_fraction"):
        assign_split("x", 1.5)
    with pytest.raises(ValueError, match="seed"):
        TrainValSplit(seed=-1)


# --------------------------------------------------------------------------------------------
# Pipeline: accounting, bad stages, the dirty corpus end to end
# --------------------------------------------------------------------------------------------


class SwallowsEveryOther(Stage):
    name = "swallow"

    def __call__(self, docs):
        for index, doc in enumerate(docs):
            if index % 2 == 0:
                yield doc


class YieldsStrings(Stage):
    name = "strings"

    def process(self, document):
        return document.text


def test_pipeline_refuses_stages_that_lose_documents_or_yield_junk():
    with pytest.raises(RuntimeError, match="exactly one Document or Dropped"):
        list(Pipeline([SwallowsEveryOther()], progress=False).run(["a", "b", "c"]))
    with pytest.raises(TypeError, match="yielded a str"):
        list(Pipeline([YieldsStrings()], progress=False).run(["a"]))
    with pytest.raises(TypeError, match="not a Stage"):
        Pipeline([normalize_text])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unique"):
        Pipeline([Normalize(), Normalize()])


def full_pipeline() -> Pipeline:
    return Pipeline(
        [
            Normalize(),
            LanguageFilter(["en"]),
            QualityFilter(),
            BlocklistFilter(["casino"]),
            ExactDedup(),
            NearDedup(threshold=0.8),
            ScrubPII(),
            TrainValSplit(0.1),
        ],
        progress=False,
    )


@pytest.fixture(scope="module")
def cleaned():
    corpus = dirty_corpus(python_docs(), seed=0)
    corpus.append(Document("word " * 200_000, "huge-line", {"planted": "huge"}))
    pipeline = full_pipeline()
    kept = list(pipeline.run(corpus))
    return corpus, kept, pipeline.report


def test_every_document_is_accounted_for(cleaned):
    corpus, kept, report = cleaned
    assert report.stages[0].docs_in == len(corpus)
    assert report.stages[-1].docs_out == len(kept)
    for stage in report.stages:
        assert stage.docs_in == stage.docs_out + stage.docs_dropped
    for before, after in zip(report.stages, report.stages[1:], strict=False):
        assert after.docs_in == before.docs_out
    assert len(corpus) == len(kept) + sum(report.dropped().values())
    table = str(report)
    assert all(stage.name in table for stage in report.stages)


def test_planted_defects_are_removed(cleaned):
    _, kept, report = cleaned
    planted = Counter(d.meta["planted"] for d in kept)
    for kind in ("binary", "empty", "foreign", "boilerplate", "huge"):
        assert planted[kind] == 0, kind
    assert report["normalize"].dropped == Counter(binary=3, empty=3)
    assert report["language"].dropped["language"] >= 5
    # All exact duplicates removed: each normalised text survives at most once.
    keys = Counter(exact_key(d.text) for d in kept)
    assert max(keys.values()) == 1
    # PII: nothing left that looks like an e-mail or IP, and the planted sentences are gone.
    assert not any(EMAIL.search(d.text) or IPV4.search(d.text) for d in kept)
    assert all(d.meta["split"] in ("train", "val") for d in kept)


def test_split_of_cleaned_corpus_has_no_duplicate_across_splits(cleaned):
    _, kept, _ = cleaned
    by_split: dict[str, set[bytes]] = {"train": set(), "val": set()}
    for doc in kept:
        by_split[doc.meta["split"]].add(exact_key(doc.text))
    assert not by_split["train"] & by_split["val"]


def test_dirty_corpus_is_deterministic_and_labelled():
    a = dirty_corpus(["one text", "another text"], seed=3, pii=1)
    b = dirty_corpus(["one text", "another text"], seed=3, pii=1)
    assert [d.text for d in a] == [d.text for d in b]
    assert {d.meta["planted"] for d in a} >= {
        "clean",
        "pii",
        "exact_duplicate",
        "binary",
        "foreign",
    }
    with pytest.raises(ValueError, match="at least one clean document"):
        dirty_corpus([])
    assert perturb("a b c d", 0.0, random.Random(0)) != "a b c d"  # at least one edit


def test_report_keeps_a_few_examples_per_reason():
    pipeline = Pipeline([QualityFilter()], progress=False, examples=2)
    list(pipeline.run(["short"] * 5))
    assert len(pipeline.report["quality"].examples["word_count"]) == 2
    assert re.search(r"word_count 5", str(pipeline.report))
