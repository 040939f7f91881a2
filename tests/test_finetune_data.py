"""Instruction data, prompt templates and First Folio alignment (llmcourse.data.instructions,
llmcourse.data.folio)."""

from __future__ import annotations

import pytest

from llmcourse.data.folio import (
    FOLIO_CATALOGUE,
    align_lines,
    folio_lines,
    folio_modern_pairs,
    genre_lines,
    modern_lines,
    skeleton,
    word_pairs,
)
from llmcourse.data.instructions import (
    ALPACA,
    CHATML,
    EDITIONS,
    QA,
    InstructionExample,
    chatml,
    edition_instructions,
    get_template,
    shakespeare_instructions,
    speeches,
)
from llmcourse.pretrained import VAL_PLAYS, shakespeare_works

EXAMPLE = InstructionExample("Who speaks this line?", "?: Hail!", "Macbeth", "speaker", "macbeth")


def test_alpaca_layout():
    assert ALPACA.format_prompt(EXAMPLE) == (
        "### Instruction:\nWho speaks this line?\n\n### Input:\n?: Hail!\n\n### Response:\n"
    )
    no_input = {"instruction": "Name a play.", "input": ""}
    assert ALPACA.format_prompt(no_input) == "### Instruction:\nName a play.\n\n### Response:\n"
    assert ALPACA.format_response("Macbeth") == "Macbeth\n"


@pytest.mark.slow
def test_chatml_matches_smollm2_chat_template():
    from transformers import AutoTokenizer

    from llmcourse.pretrained import smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir(), local_files_only=True)
    messages = [{"role": "user", "content": "Who speaks this line?\n\n?: Hail!"}]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert CHATML.format_prompt(EXAMPLE) == expected
    assert chatml(messages, add_generation_prompt=True) == expected
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert chatml(turns) == tokenizer.apply_chat_template(turns, tokenize=False)


def test_templates_with_missing_fields_raise():
    with pytest.raises(ValueError, match="instruction"):
        ALPACA.format_prompt({"input": "x"})
    with pytest.raises(ValueError, match="instruction"):
        CHATML.format_prompt({"instruction": "", "input": "x"})
    with pytest.raises(ValueError, match="non-empty"):
        ALPACA.format_response("")
    with pytest.raises(TypeError, match="InstructionExample"):
        ALPACA.format_prompt(["not", "a", "dict"])
    with pytest.raises(ValueError, match="Unknown template"):
        get_template("vicuna")
    with pytest.raises(ValueError, match="'role' and 'content'"):
        chatml([{"role": "user"}])


def test_speeches_are_parsed_with_speakers_and_scenes():
    play = speeches(shakespeare_works("modern", "val")["macbeth"])
    first = play[0]
    assert first.speaker == "First Witch" and first.lines[0] == "When shall we three meet again?"
    assert len(play) > 500 and len({s.scene for s in play}) > 20


def test_instruction_splits_hold_out_whole_plays():
    train = shakespeare_instructions("train", per_play=10)
    val = shakespeare_instructions("val", per_play=10)
    assert {e.play for e in val} == set(VAL_PLAYS)
    assert not {e.play for e in train} & set(VAL_PLAYS)
    assert {e.task for e in val} == {"speaker", "continue", "play"}
    for example in val:
        if example.choices:
            assert example.output in example.choices and len(set(example.choices)) == 2
        assert len(ALPACA.format_prompt(example)) < 400
    assert shakespeare_instructions("val", per_play=10) == val  # seeded


def test_instruction_arguments_are_checked():
    with pytest.raises(ValueError, match="Unknown task"):
        shakespeare_instructions("val", tasks=["rhyme"])
    with pytest.raises(ValueError, match="per_play"):
        shakespeare_instructions("val", per_play=0)


def test_skeleton_merges_folio_spellings():
    assert skeleton("Long liue the King") == skeleton("Long live the king!")
    assert skeleton("Vpon the Heath") == skeleton("Upon the heath.")
    assert skeleton("haue") == skeleton("have")


def test_folio_and_modern_lines_drop_headings_and_directions():
    folio = "  Mac. So foule and faire a day\nEnter Banquo.\n   Banq. How farre is't?"
    assert folio_lines(folio) == ["So foule and faire a day", "How farre is't?"]
    modern = "MACBETH.\nSo foul and fair a day\n\n[Enter Banquo.]\n\nBANQUO.\nHow far is't?"
    assert modern_lines(modern) == ["So foul and fair a day", "How far is't?"]


def test_alignment_pairs_the_same_verse():
    pairs = align_lines(
        ["When shall we three meet againe?", "Exeunt", "In Thunder, Lightning, or in Raine?"],
        ["When shall we three meet again?", "In thunder, lightning, or in rain?"],
    )
    assert [(p.folio[:4], p.modern[:4]) for p in pairs] == [("When", "When"), ("In T", "In t")]


def test_macbeth_pairs_are_many_and_similar():
    pairs = folio_modern_pairs("val", plays=["macbeth"])
    assert len(pairs) > 1500
    assert sum(p.similarity >= 0.95 for p in pairs) / len(pairs) > 0.9
    by_folio = {p.folio: p.modern for p in pairs}
    assert by_folio["When shall we three meet againe?"] == "When shall we three meet again?"
    with pytest.raises(ValueError, match="No play"):
        folio_modern_pairs("train", plays=["macbeth"])


def test_genre_lines_follow_the_folio_catalogue():
    samples = genre_lines("val", per_play=20)
    assert {genre for _, genre, _ in samples} == {"comedy", "tragedy"}
    assert all(FOLIO_CATALOGUE[play] == genre for _, genre, play in samples)
    assert len(FOLIO_CATALOGUE) == 36  # the Folio's 35 catalogued plays and Troilus
    with pytest.raises(ValueError, match="genre"):
        genre_lines("val", genres=("romance",))


def test_folio_pairs_are_cached_and_unchanged_by_the_cache():
    first = folio_modern_pairs("val", plays=["macbeth"], max_chars=30)
    again = folio_modern_pairs("val", plays=["macbeth"], max_chars=30)
    assert first == again and first is not again  # a fresh list: callers may change it
    again.clear()
    assert folio_modern_pairs("val", plays=["macbeth"], max_chars=30) == first


def test_word_pairs_come_from_lines_of_equal_length():
    from llmcourse.data.folio import LinePair

    pairs = [
        LinePair("When shall we three meet againe?", "When shall we three meet again?", "m", 1.0),
        LinePair("to morrow, and to morrow", "tomorrow, and tomorrow", "m", 0.9),
    ]
    assert word_pairs(pairs) == [
        ("When", "When"), ("shall", "shall"), ("we", "we"), ("three", "three"),
        ("meet", "meet"), ("againe?", "again?"),
    ]  # fmt: skip
    assert word_pairs(pairs, max_chars=5) == [("When", "When"), ("shall", "shall"), ("we", "we"),
                                              ("three", "three"), ("meet", "meet")]  # fmt: skip
    with pytest.raises(ValueError, match="max_chars"):
        word_pairs(pairs, max_chars=0)


# ---- "Folio or modern?" and the compact QA template -------------------------------------------


def test_qa_layout_is_short_and_needs_an_instruction():
    assert get_template("qa") is QA
    assert QA.format_prompt(EXAMPLE) == "Q: Who speaks this line?\n?: Hail!\nA: "
    assert QA.format_prompt({"instruction": "Name a play.", "input": ""}) == "Q: Name a play.\nA: "
    assert QA.format_response("Macbeth") == "Macbeth\n"
    assert "#" not in QA.prompt + QA.prompt_no_input + QA.response_end
    with pytest.raises(ValueError, match="instruction"):
        QA.format_prompt({"input": "?: Hail!"})


def test_edition_examples_are_balanced_minimal_pairs():
    examples = edition_instructions("val", plays=["macbeth"], per_play=40, max_chars=32)
    assert len(examples) == 80
    assert sum(e.output == "Folio" for e in examples) == 40
    assert all(e.choices == EDITIONS and e.task == "edition" for e in examples)
    assert all(e.play == "macbeth" and len(e.input) <= 32 for e in examples)
    folio = {e.input for e in examples if e.output == "Folio"}
    modern = {e.input for e in examples if e.output == "modern"}
    assert "When shall we three meet againe?" in folio or len(folio) == 40
    assert not folio & modern  # a spelling difference, never the same line twice
    # Every kept pair differs in its letters, not only in punctuation or case.
    pairs = {p.folio: p.modern for p in folio_modern_pairs("val", plays=["macbeth"])}
    for line in folio:
        letters = [("".join(c for c in t.lower() if c.isalpha())) for t in (line, pairs[line])]
        assert letters[0] != letters[1] and pairs[line] in modern
    assert edition_instructions("val", plays=["macbeth"], per_play=40) == examples  # seeded


def test_edition_splits_hold_out_whole_plays_and_fit_the_tiny_gpt():
    from llmcourse.train.presets import shakespeare_chars

    tokenizer = shakespeare_chars().tokenizer
    alphabet = tokenizer.decode(list(range(tokenizer.vocab_size)))
    train = edition_instructions("train", plays=["hamlet", "lear"], per_play=30, alphabet=alphabet)
    val = edition_instructions("val", per_play=10, alphabet=alphabet, seed=1)
    assert {e.play for e in val} <= set(VAL_PLAYS) and len({e.play for e in val}) >= 4
    assert {e.play for e in train} == {"hamlet", "lear"}
    assert not {e.input for e in train} & {e.input for e in val}
    for example in train + val:
        text = QA.format_prompt(example) + QA.format_response(example.output)
        assert len(tokenizer.encode(text)) <= 64  # the tiny GPT's context
    narrow = edition_instructions("val", plays=["macbeth"], alphabet=alphabet.replace("'", ""))
    assert narrow and all("'" not in e.input for e in narrow)
    assert len(narrow) < len(edition_instructions("val", plays=["macbeth"], alphabet=alphabet))


def test_edition_arguments_are_checked():
    with pytest.raises(ValueError, match="per_play"):
        edition_instructions("val", per_play=0)
    with pytest.raises(ValueError, match="max_chars"):
        edition_instructions("val", max_chars=0)
    with pytest.raises(ValueError, match="No play"):
        edition_instructions("val", plays=["hamlet"])
