"""The ablation ladder: every rung is causal and starts at ln(vocab); the rungs are small diffs of
MiniGPT; ``python -m llmcourse.train ladder`` writes a well-formed table; and the committed
3-seed results hold the orderings lesson 04 states."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from llmcourse.models.ablations import WithLayerNorm
from llmcourse.models.minigpt import MiniGPT, MiniGPTConfig
from llmcourse.train import ladder
from llmcourse.train.cli import main as train_main

CONFIG = MiniGPTConfig(vocab_size=50, context_length=24, d_model=32, n_layer=2, n_head=4)


def ids(batch=3, seq=24, seed=0):
    return torch.randint(0, 50, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rung", list(ladder.RUNGS))
def test_every_rung_starts_uniform_and_is_causal(rung):
    torch.manual_seed(0)
    model = ladder.RUNGS[rung](CONFIG).eval()
    x = ids()
    with torch.no_grad():
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten())
        changed = x.clone()
        changed[:, 10:] = (changed[:, 10:] + 7) % 50
        later = model(changed).logits
    assert logits.shape == (3, 24, 50)
    assert abs(loss.item() - math.log(50)) < 0.05
    torch.testing.assert_close(later[:, :10], logits[:, :10], atol=1e-6, rtol=0)


def test_rungs_take_targets_like_minigpt():
    x = ids()
    for rung in ("bigram", "one-head", "mlp", "residual", "layernorm", "minigpt"):
        out = ladder.RUNGS[rung](CONFIG)(x[:, :-1], x[:, 1:])
        assert out.loss is not None and out.loss.shape == ()


def test_minigpt_is_the_layernorm_rung_with_tied_embeddings():
    """The last diff is only tying and initialisation: with the same weights (lm_head set to
    the token embedding) the + LayerNorm rung computes MiniGPT's logits."""
    torch.manual_seed(0)
    rung = WithLayerNorm(CONFIG).eval()
    mini = MiniGPT(CONFIG).eval()
    state = {k.replace("layers.", "blocks."): v for k, v in rung.state_dict().items()}
    state["lm_head.weight"] = state["embed_tokens.weight"]
    mini.load_state_dict(state)
    rung.lm_head.weight = rung.embed_tokens.weight
    with torch.no_grad():
        torch.testing.assert_close(mini(ids()).logits, rung(ids()).logits, atol=1e-6, rtol=0)


def test_one_head_and_multi_head_differ_only_in_the_number_of_heads():
    one, multi = ladder.RUNGS["one-head"](CONFIG), ladder.RUNGS["multi-head"](CONFIG)
    assert one.layers[0].n_head == 1 and multi.layers[0].n_head == CONFIG.n_head
    assert {k: v.shape for k, v in one.state_dict().items()} == {
        k: v.shape for k, v in multi.state_dict().items()
    }


def test_counted_ngram_losses_match_a_direct_count():
    rng = np.random.default_rng(0)
    train, val = rng.integers(0, 5, 400), rng.integers(0, 5, 100)
    bigram = 0.0
    for a, b in itertools.pairwise(val):
        pairs = np.sum((train[:-1] == a) & (train[1:] == b))
        bigram -= math.log((pairs + 1) / (np.sum(train[:-1] == a) + 5))
    bigram /= len(val) - 1
    unigram = -np.mean([math.log((np.sum(train == b) + 1) / (400 + 5)) for b in val])
    assert ladder.counted_ngram_loss(train, val, 5, order=2) == pytest.approx(bigram)
    assert ladder.counted_ngram_loss(train, val, 5, order=1) == pytest.approx(unigram)
    with pytest.raises(ValueError, match="order"):
        ladder.counted_ngram_loss(train, val, 5, order=3)


def test_compare_calls_a_rung_better_only_outside_the_spread():
    def row(rung, low, high):
        return {"rung": rung, "val_loss_min": low, "val_loss_max": high}

    results = {"summary": [row("a", 2.0, 2.1), row("b", 2.2, 2.3), row("c", 2.05, 2.25)]}
    assert ladder.compare(results, "a", "b") == "better"
    assert ladder.compare(results, "b", "a") == "worse"
    assert ladder.compare(results, "c", "a") == "within the spread"
    with pytest.raises(ValueError, match="No rung 'z'"):
        ladder.compare(results, "z", "a")


@pytest.mark.slow
def test_ladder_command_writes_a_table_of_every_rung(tmp_path):
    tiny = ["--budget", "live", "--steps", "4", "--d-model", "16", "--n-layer", "1"]
    tiny += ["--eval-every", "2", "--eval-windows", "16", "--batch-size", "4"]
    tiny += ["--warmup-steps", "1"]
    train_main(["ladder", *tiny, "--seeds", "2", "--out-dir", str(tmp_path)])
    results = json.loads((tmp_path / "ladder.json").read_text())
    assert results["config"]["steps"] == 4 and results["seeds"] == [0, 1]
    assert results["tokens_per_rung"] == 4 * 4 * 64
    assert [row["rung"] for row in results["summary"]] == list(ladder.RUNGS)
    assert len(results["runs"]) == 2 * len(ladder.RUNGS)
    for run in results["runs"]:
        assert [step for step, _ in run["curve"]] == [0, 2, 4]
        assert abs(run["initial_val_loss"] - results["ln_vocab"]) < 0.05
        assert 0 < run["val_loss"] < results["ln_vocab"] + 0.1
    for row in results["summary"]:
        assert row["n_seeds"] == 2 and row["val_loss_min"] <= row["val_loss_mean"]
        assert row["val_loss_mean"] <= row["val_loss_max"] and row["val_loss_std"] >= 0
    assert 2.0 < results["counted_bigram_val_loss"] < results["counted_unigram_val_loss"]
    assert results["counted_unigram_val_loss"] < results["ln_vocab"]
    assert results["command"].startswith("python -m llmcourse.train ladder --budget live")
    table = (tmp_path / "ladder.md").read_text()
    assert results["config_hash"] in table
    assert sum(line.startswith("| ") for line in table.splitlines()) == 1 + len(ladder.RUNGS)


def test_ladder_command_refuses_bad_flags(tmp_path):
    with pytest.raises(SystemExit):
        train_main(["ladder", "--rungs", "transformer-xl", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--seeds"):
        train_main(["ladder", "--seeds", "0", "--out-dir", str(tmp_path)])


def test_committed_results_are_the_documented_full_run():
    """The file lesson 04 reads: the full budget, three seeds, every rung, sane values."""
    results = ladder.load_results()
    full = ladder.BUDGETS["full"]
    assert results["config_hash"] == full.config_hash(), "re-run: the full budget changed"
    assert results["seeds"] == [0, 1, 2]
    assert results["command"].startswith("python -m llmcourse.train ladder --seeds 3")
    assert [row["rung"] for row in results["summary"]] == list(ladder.RUNGS)
    assert len(results["runs"]) == 3 * len(ladder.RUNGS)
    for run in results["runs"]:
        assert abs(run["initial_val_loss"] - results["ln_vocab"]) < 0.05, run["rung"]
        assert [step for step, _ in run["curve"]] == list(range(0, full.steps + 1, 50))
        assert 1.5 < run["val_loss"] < results["ln_vocab"]
    for row in results["summary"]:
        assert 0 <= row["val_loss_std"] < 0.1 and row["n_seeds"] == 3


def test_committed_results_hold_the_orderings_lesson_04_states():
    results = ladder.load_results()
    rows = {row["rung"]: row for row in results["summary"]}

    def verdict(rung, baseline):
        return ladder.compare(results, rung, baseline)

    # The bigram rung reaches the counted bigram; attention alone falls short of it.
    assert abs(rows["bigram"]["val_loss_mean"] - results["counted_bigram_val_loss"]) < 0.05
    assert verdict("one-head", "bigram") == "worse"
    assert verdict("multi-head", "one-head") == "better"
    # A deep stack without residual paths learns letter frequencies only.
    mlp = rows["mlp"]["val_loss_mean"]
    assert abs(mlp - results["counted_unigram_val_loss"]) < 0.05
    assert verdict("residual", "mlp") == "better" and verdict("residual", "bigram") == "better"
    assert verdict("layernorm", "residual") == "better"
    assert verdict("tiny-gpt-block", "minigpt") == "better"
