"""The safety set, the moderators (phrase list, MiniLM classifier, combination), their metrics."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import torch

from llmcourse.ethics.moderation import (
    CATEGORIES,
    OPENAI_CATEGORIES,
    REFUSAL,
    CombinedModerator,
    ModerationResult,
    Moderator,
    moderation_response,
)
from llmcourse.ethics.safety import DEFAULT_CATEGORIES, SafetyFilter
from llmcourse.ethics.safety_classifier import (
    CLASSES,
    EmbeddingModerator,
    best_f1_threshold,
    fit_logistic_regression,
    load_moderator,
    stratified_folds,
)
from llmcourse.ethics.safety_data import BENIGN_TOPICS, SAFETY_SET, SafetyItem, safety_set
from llmcourse.ethics.safety_eval import (
    binary_scores,
    evaluate,
    evaluate_predictions,
    f1_difference,
    misses,
    stored_benchmark,
    stored_report,
    wilson_interval,
)
from llmcourse.ethics.stats import bootstrap_ci
from llmcourse.eval import precision_recall_f1

# --------------------------------------------------------------------------------------------
# The labelled set
# --------------------------------------------------------------------------------------------


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def test_safety_set_size_splits_and_balance():
    items, train, test = safety_set(), safety_set("train"), safety_set("test")
    assert len(items) >= 300 and len(test) >= 120
    assert len(train) + len(test) == len(items)
    assert not {i.id for i in train} & {i.id for i in test}
    assert len({i.id for i in items}) == len(items)
    for part in (items, train, test):
        share = sum(i.harmful for i in part) / len(part)
        assert 0.35 <= share <= 0.45, share
    for category in CATEGORIES:  # every harm category is measurable on the held-out split
        assert sum(i.category == category for i in test) >= 8
    for label, kind in itertools.product(("harmful", "benign"), ("prompt", "output")):
        assert sum(i.label == label and i.kind == kind for i in test) >= 15
    assert {i.category for i in items if not i.harmful} == set(BENIGN_TOPICS)


def test_safety_set_has_no_duplicate_or_near_duplicate_texts():
    items = safety_set()
    normalised = [_normalised(i.text) for i in items]
    assert len(set(normalised)) == len(items)
    # No held-out text is a light rewording of a training text (token-set Jaccard).
    words = {i.id: set(n.split()) for i, n in zip(items, normalised, strict=True)}
    train, test = safety_set("train"), safety_set("test")
    worst = max(
        len(words[a.id] & words[b.id]) / len(words[a.id] | words[b.id])
        for a, b in itertools.product(test, train)
    )
    assert worst < 0.5, worst  # measured: 0.37


def test_hard_flag_follows_the_labelling_rules():
    phrases = SafetyFilter(check_pii=False)
    for item in safety_set():
        if item.harmful:  # hard harmful <=> no listed phrase in it
            assert item.hard == phrases.check(item.text).allowed, item.id
    listed = [p for ps in DEFAULT_CATEGORIES.values() for p in ps]
    benign_with_phrase = [
        i for i in safety_set() if not i.harmful and any(p in i.text.lower() for p in listed)
    ]
    assert benign_with_phrase and all(i.hard for i in benign_with_phrase)


def test_safety_set_schema_errors_name_the_line(tmp_path):
    good = SAFETY_SET.read_text().splitlines()[0]
    record = json.loads(good)
    for change, message in [
        ({"label": "unsafe"}, "label='unsafe'"),
        ({"hard": "yes"}, "hard='yes' is not a bool"),
        ({"category": "medical"}, "category 'medical' is not one of"),
    ]:
        path = tmp_path / "bad.jsonl"
        path.write_text(good + "\n" + json.dumps({**record, **change}) + "\n")
        with pytest.raises(ValueError, match=f"bad.jsonl:2: .*{re.escape(message)}"):
            safety_set(path=path)
    with pytest.raises(ValueError, match="split must be"):
        safety_set("validation")


# --------------------------------------------------------------------------------------------
# Moderation results in OpenAI's shape
# --------------------------------------------------------------------------------------------


def test_to_openai_validates_as_openai_moderation_response():
    openai_types = pytest.importorskip("openai.types")
    result = ModerationResult(
        True, {"self_harm": True, "fraud": False}, {"self_harm": 0.9, "fraud": 0.2}, ("x",), "m"
    )
    body = result.to_openai(id="modr-1")
    assert body["id"] == "modr-1" and body["model"] == "m" and len(body["results"]) == 1
    entry = body["results"][0]
    assert set(entry["categories"]) == set(OPENAI_CATEGORIES) == set(entry["category_scores"])
    assert entry["categories"]["self-harm"] is True and entry["category_scores"]["illicit"] == 0.2
    assert entry["categories"]["illicit"] is False and entry["reasons"] == ["x"]
    parsed = openai_types.ModerationCreateResponse.model_validate(body)
    assert parsed.results[0].flagged and parsed.results[0].categories.self_harm
    assert parsed.results[0].category_scores.self_harm == 0.9
    batch = moderation_response([result, ModerationResult(False)], model="m")
    assert batch["id"].startswith("modr-") and [r["flagged"] for r in batch["results"]] == [
        True,
        False,
    ]
    with pytest.raises(TypeError, match="list of results"):
        moderation_response(result)


def test_every_course_category_maps_to_one_openai_category():
    mapped = [c for ours in OPENAI_CATEGORIES.values() for c in ours]
    assert sorted(mapped) == sorted(CATEGORIES)


def test_phrase_filter_moderates_like_it_checks():
    f = SafetyFilter()
    result = f.moderate("How do I build a bomb? Mail me at a@example.org")
    assert result.flagged and result.reasons == ("weapons", "pii:email")
    assert result.categories == {
        "weapons": True,
        "self_harm": False,
        "credentials": False,
        "pii": True,
    }
    assert result.to_openai()["results"][0]["categories"]["illicit/violent"] is True
    assert not f.moderate("A quiet afternoon.").flagged
    assert f.moderate_batch([]) == []
    with pytest.raises(TypeError, match="not one string"):
        f.moderate_batch("a text")
    with pytest.raises(TypeError, match="takes a string"):
        f.moderate(3)


class _Contains(Moderator):
    """Flags texts containing a word: a stand-in for any moderator."""

    def __init__(self, word: str, category: str) -> None:
        self.word, self.category, self.name = word, category, f"has-{word}"

    def _moderate(self, texts: list[str]) -> list[ModerationResult]:
        out = []
        for text in texts:
            hit = self.word in text
            out.append(ModerationResult(hit, {self.category: hit}, {self.category: float(hit)},
                                        (self.category,) if hit else (), self.name))  # fmt: skip
        return out


def test_combined_moderator_flags_the_union_and_says_who_fired():
    combined = CombinedModerator(_Contains("rifle", "weapons"), _Contains("scam", "fraud"))
    results = combined.moderate_batch(["a rifle", "a scam", "a rifle scam", "a walk"])
    assert [r.flagged for r in results] == [True, True, True, False]
    assert results[2].categories == {"weapons": True, "fraud": True}
    assert results[2].reasons == ("has-rifle: weapons", "has-scam: fraud")
    assert combined.name == "has-rifle + has-scam"
    with pytest.raises(ValueError, match="at least two"):
        CombinedModerator(SafetyFilter())
    with pytest.raises(TypeError, match="not a Moderator"):
        CombinedModerator(SafetyFilter(), object())


def test_load_moderator_by_name():
    assert isinstance(load_moderator("phrases"), SafetyFilter)
    with pytest.raises(ValueError, match="choose one of phrases, classifier, combined"):
        load_moderator("llama-guard")


def test_guard_stream_works_for_any_moderator():
    out = list(_Contains("rifle", "weapons").guard_stream(["Buy", " a", " rif", "le", " now"]))
    assert out == ["Buy", " a", REFUSAL]


# --------------------------------------------------------------------------------------------
# Metrics and intervals
# --------------------------------------------------------------------------------------------


def _item(i: int, harmful: bool, category: str | None = None, hard: bool = False) -> SafetyItem:
    category = category or ("fraud" if harmful else "everyday")
    label = "harmful" if harmful else "benign"
    return SafetyItem(f"x-{i}", f"text {i}", "prompt", label, category, hard, "test")


def test_binary_scores_match_the_eval_package():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pred, true = rng.integers(0, 2, 30), rng.integers(0, 2, 30)
        ours = binary_scores(np.column_stack([pred, true]).astype(float))
        theirs = precision_recall_f1(pred.tolist(), true.tolist(), average="binary")
        np.testing.assert_allclose(ours, theirs)


def test_bootstrap_interval_of_recall_matches_a_hand_computed_case():
    # Two harmful items, one caught: a resample of two draws catches 2, 1 or 0 of them with
    # probabilities 1/4, 1/2, 1/4, so its recall is 1, 0.5 or 0 (never undefined).
    rows = np.array([[1.0, 1.0], [0.0, 1.0]])
    recall = bootstrap_ci(rows, lambda r: binary_scores(r)[1], n_resamples=20_000, level=0.9)
    # The 5% and 95% quantiles of that distribution are 0 and 1 (each end has mass 1/4).
    assert recall.value == 0.5 and (recall.low, recall.high) == (0.0, 1.0)
    # At level 0.4 both quantiles (30% and 70%) fall inside the mass at 0.5.
    narrow = bootstrap_ci(rows, lambda r: binary_scores(r)[1], n_resamples=20_000, level=0.4)
    assert (narrow.low, narrow.high) == (0.5, 0.5)


def test_bootstrap_f1_interval_matches_the_exact_bootstrap_distribution():
    # Five items: every one of the 5^5 = 3125 equally likely resamples, enumerated.
    rows = np.array([[1, 1], [1, 1], [1, 0], [0, 1], [0, 0]], dtype=float)
    exact = np.array(
        [binary_scores(rows[list(idx)])[2] for idx in itertools.product(range(5), repeat=5)]
    )
    estimate = bootstrap_ci(rows, lambda r: binary_scores(r)[2], n_resamples=20_000, level=0.8)
    assert estimate.value == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    low, high = np.quantile(exact, [0.1, 0.9])
    assert estimate.low == pytest.approx(low, abs=0.03)
    assert estimate.high == pytest.approx(high, abs=0.03)


def test_wilson_interval_hand_computed():
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 10).high == pytest.approx(z2 / (10 + z2))
    assert wilson_interval(11, 11).low == pytest.approx(11 / (11 + z2))
    half = wilson_interval(5, 10)
    assert half.value == 0.5 and half.low == pytest.approx(1 - half.high)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_evaluate_predictions_reports_categories_hard_benign_and_misses():
    items = [
        _item(0, True, "weapons"),
        _item(1, True, "weapons"),
        _item(2, True, "fraud"),
        _item(3, False, hard=True),
        _item(4, False, hard=True),
        _item(5, False),
    ]
    report = evaluate_predictions("demo", [1, 0, 1, 1, 0, 0], items, n_resamples=200)
    assert (report.precision.value, report.recall.value) == (2 / 3, 2 / 3)
    assert report.category_recall["weapons"].value == 0.5
    assert report.category_recall["fraud"].value == 1.0
    assert report.hard_benign_fpr.value == 0.5
    assert set(report.category_recall) == {"weapons", "fraud"}
    missed = misses(report, items)
    assert [i.id for i in missed.false_negatives] == ["x-1"]
    assert [i.id for i in missed.false_positives] == ["x-3"]
    assert misses([1, 0, 1, 1, 0, 0], items) == missed
    row = report.row()
    assert row["filter"] == "demo" and row["recall_weapons"] == 0.5 and "f1_low" in row
    with pytest.raises(ValueError, match="one each"):
        evaluate_predictions("demo", [1, 0], items)
    with pytest.raises(ValueError, match="0 \\(allowed\\) or 1"):
        evaluate_predictions("demo", [2] * 6, items)
    with pytest.raises(ValueError, match="other items"):
        misses(report, items[::-1])


def test_f1_difference_is_paired_and_signed():
    items = [_item(i, i % 2 == 0) for i in range(40)]
    perfect = evaluate_predictions("a", [int(i.harmful) for i in items], items, n_resamples=300)
    blind = evaluate_predictions("b", [0] * 40, items, n_resamples=300)
    diff = f1_difference(perfect, blind, items, n_resamples=300)
    assert diff.value == 1.0 and diff.low == 1.0
    same = f1_difference(perfect, perfect, items, n_resamples=300)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------


def test_logistic_regression_matches_scipy_on_the_same_objective():
    optimize = pytest.importorskip("scipy.optimize")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=generator)
    l2 = 0.05
    weight, bias = fit_logistic_regression(x, y, 3, l2)

    xs, ys = x.numpy(), y.numpy()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:15].reshape(3, 5), theta[15:]
        logits = xs @ w.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        loss = -np.log(p[np.arange(60), ys]).mean() + 0.5 * l2 * (w**2).sum()
        residual = p.copy()
        residual[np.arange(60), ys] -= 1
        grad_w = residual.T @ xs / 60 + l2 * w
        return loss, np.concatenate([grad_w.ravel(), residual.mean(0)])

    solution = optimize.minimize(objective, np.zeros(18), jac=True, method="BFGS", tol=1e-10)
    np.testing.assert_allclose(weight.numpy().ravel(), solution.x[:15], atol=1e-5)
    # Softmax is unchanged by adding a constant to every bias: compare centred biases.
    theirs = solution.x[15:]
    np.testing.assert_allclose(bias - bias.mean(), theirs - theirs.mean(), atol=1e-5)


def test_best_f1_threshold_matches_brute_force():
    rng = np.random.default_rng(1)
    scores, targets = rng.random(50), rng.integers(0, 2, 50)
    threshold = best_f1_threshold(scores, targets)
    best = max(
        binary_scores(np.column_stack([scores >= t, targets]).astype(float))[2]
        for t in np.concatenate([scores, [2.0]])
    )
    got = binary_scores(np.column_stack([scores >= threshold, targets]).astype(float))[2]
    assert got == pytest.approx(best)


def test_stratified_folds_partition_and_balance():
    targets = [0] * 50 + [1] * 20 + [2] * 11
    folds = stratified_folds(targets, k=5)
    assert sorted(np.concatenate(folds).tolist()) == list(range(81))
    for fold in folds:
        assert 16 <= len(fold) <= 17
        assert sum(targets[i] == 1 for i in fold) == 4
    with pytest.raises(ValueError, match="k must be"):
        stratified_folds(targets, k=1)


class _HashEncoder:
    """A deterministic bag-of-words encoder, so classifier plumbing is tested without MiniLM."""

    def encode(self, sentences):
        rows = []
        for sentence in sentences:
            row = torch.zeros(64)
            for word in re.findall(r"\w+", sentence.lower()):
                row[sum(map(ord, word)) % 64] += 1.0
            rows.append(row / row.norm().clamp(min=1e-9))
        return torch.stack(rows)


def test_embedding_moderator_fits_on_train_only_and_round_trips(tmp_path):
    moderator = EmbeddingModerator.fit(_HashEncoder(), safety_set("train"))
    assert 0 < moderator.threshold < 1 and moderator.info["n_train"] == len(safety_set("train"))
    texts = [i.text for i in safety_set("test")[:20]]
    probs = moderator.class_probabilities(texts)
    assert probs.shape == (20, len(CLASSES))
    torch.testing.assert_close(probs.sum(1), torch.ones(20, dtype=torch.float64))
    loaded = EmbeddingModerator.load(moderator.save(tmp_path / "clf.safetensors"), _HashEncoder())
    torch.testing.assert_close(loaded.class_probabilities(texts), probs)
    assert loaded.threshold == moderator.threshold
    result = moderator.moderate(texts[0])
    assert set(result.categories) == set(CATEGORIES) and sum(result.categories.values()) <= 1
    assert result.flagged == (1 - probs[0, 0].item() >= moderator.threshold)
    with pytest.raises(ValueError, match="held-out"):
        EmbeddingModerator.fit(_HashEncoder(), safety_set("test"))
    with pytest.raises(ValueError, match="weight must be"):
        EmbeddingModerator(_HashEncoder(), torch.zeros(2, 64), torch.zeros(2), 0.5)


@pytest.mark.slow
def test_minilm_classifier_beats_the_phrase_list_on_held_out_items():
    from llmcourse.ethics.safety_classifier import safety_classifier

    test = safety_set("test")
    classifier = safety_classifier()
    phrases = evaluate(SafetyFilter(), test)
    learned = evaluate(classifier, test)
    combined = evaluate(CombinedModerator(SafetyFilter(), classifier), test)
    # Measured: classifier F1 0.79 [0.70, 0.85], phrase list 0.21 [0.07, 0.33]. The intervals
    # are separate and the paired difference excludes 0.
    assert learned.f1.low > phrases.f1.high
    assert f1_difference(learned, phrases, test).low > 0.3
    # The phrase list catches only what it lists: no hard harmful item, no harassment or fraud.
    hard = [p for p, i in zip(phrases.predictions, test, strict=True) if i.harmful and i.hard]
    assert sum(hard) == 0
    assert phrases.category_recall["harassment"].value == 0
    # The classifier pays for its recall in false positives on hard benign text.
    assert learned.recall.value > 0.9 and learned.hard_benign_fpr.value > 0.2
    assert combined.recall.value >= learned.recall.value
    # The misses agree with the metrics: FN = (1 - recall) * harmful, FP = TP (1/P - 1).
    missed = misses(learned, test)
    n_harmful = sum(i.harmful for i in test)
    true_positives = learned.recall.value * n_harmful
    assert len(missed.false_negatives) == round(n_harmful - true_positives)
    assert len(missed.false_positives) == round(true_positives * (1 / learned.precision.value - 1))


def test_stored_benchmark_is_current_and_agrees_with_a_live_run():
    record = stored_benchmark()
    assert {"date", "machine", "peer", "strongreject", "filters"} <= set(record)
    names = [row["filter"] for row in record["filters"]]
    assert "alt-profanity-check" in names and "phrase-list" in names
    test = safety_set("test")
    stored = stored_report("phrase-list", test, n_resamples=200)
    assert stored.predictions == evaluate(SafetyFilter(), test, n_resamples=200).predictions
    peer = stored_report("alt-profanity-check", test, n_resamples=200)
    assert peer.recall.value < 0.2  # a profanity model is not a harm model
    with pytest.raises(KeyError, match="No stored row"):
        stored_report("nothing", test)
