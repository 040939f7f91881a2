"""A safety classifier: logistic regression on MiniLM sentence embeddings.

A phrase list flags the words its authors thought of. A sentence encoder maps texts that mean
similar things to nearby vectors (all-MiniLM-L6-v2; Reimers & Gurevych 2019, Wang et al. 2020),
so a linear model on those vectors can flag "how do I get into my ex's email without her
knowing" without any listed word in it. The model is multinomial logistic regression over the
classes ``("benign", *CATEGORIES)``:

    p(class k | x) = softmax(W x + b)_k,          x = MiniLM(text), |x| = 1, 384 dims
    L(W, b) = -(1/N) sum_i log p(y_i | x_i) + (lambda / 2) ||W||^2

L is convex, so L-BFGS from zeros finds the one minimum (float64, full batch: ~200 texts).
A text's harm score is ``s(x) = 1 - p(benign | x)``; it is flagged when ``s(x) >= threshold``,
and its category is the most probable harmful class.

Everything is chosen on the safety set's ``train`` split only, by K-fold cross-validation
(Stone 1974): ``lambda`` minimises the out-of-fold log-loss over ``L2_GRID``, and the
threshold maximises F1 over the out-of-fold harm scores. The ``test`` split is never seen, so
its scores (``llmcourse.ethics.safety_eval``) estimate performance on new text written like
the set.

``safety_classifier()`` trains once (a few seconds, mostly embedding) and caches the weights
under ``llmcourse.utils.cache_dir()``, named by a hash of the set and the recipe.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from llmcourse.embeddings import SentenceEncoder
from llmcourse.ethics.moderation import CATEGORIES, ModerationResult, Moderator
from llmcourse.ethics.safety_data import SafetyItem, safety_set, safety_set_hash
from llmcourse.utils.checkpoint import load_checkpoint, save_checkpoint
from llmcourse.utils.logging import get_logger
from llmcourse.utils.paths import cache_dir

CLASSES: tuple[str, ...] = ("benign", *CATEGORIES)
L2_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
FOLDS = 5
SEED = 0


def fit_logistic_regression(
    features: torch.Tensor, targets: torch.Tensor, n_classes: int, l2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` minimising the mean cross-entropy plus ``l2/2 ||W||^2`` (bias unpenalised).

    ``features`` is ``(n, dim)``, ``targets`` ``(n,)`` class ids; W is ``(n_classes, dim)``.
    """
    if features.ndim != 2 or targets.shape != features.shape[:1]:
        raise ValueError(
            f"expected features (n, dim) and targets (n,), got {tuple(features.shape)} and "
            f"{tuple(targets.shape)}."
        )
    if l2 <= 0:
        raise ValueError(f"l2 must be positive (it makes the minimum unique), got {l2}.")
    x = features.detach().to(torch.float64)
    y = targets.long()
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def stratified_folds(targets: Sequence[int], k: int = FOLDS, seed: int = SEED) -> list[np.ndarray]:
    """``k`` disjoint index arrays covering ``range(len(targets))``, each class spread evenly."""
    targets = np.asarray(targets)
    if not 2 <= k <= len(targets):
        raise ValueError(f"k must be between 2 and the number of items ({len(targets)}), got {k}.")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        for j, index in enumerate(members):
            folds[(offset + j) % k].append(int(index))
        offset += len(members)  # the next class starts where this one stopped: even sizes
    return [np.sort(np.array(fold, dtype=np.int64)) for fold in folds]


def best_f1_threshold(scores: Sequence[float], targets: Sequence[int]) -> float:
    """The threshold t maximising F1 of ``score >= t`` (ties: the median of the best).

    Candidates are the midpoints between consecutive distinct scores, plus one below the
    lowest score (flag everything) and one above the highest (flag nothing).
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 1 or len(scores) == 0:
        raise ValueError("give one score per target, as two non-empty 1-D sequences.")
    distinct = np.unique(scores)
    candidates = np.concatenate(
        [[distinct[0] - 1e-6], (distinct[1:] + distinct[:-1]) / 2, [distinct[-1] + 1e-6]]
    )
    flagged = scores[None, :] >= candidates[:, None]  # (candidates, n)
    tp = (flagged & (targets == 1)).sum(1)
    fp = (flagged & (targets == 0)).sum(1)
    fn = ((~flagged) & (targets == 1)).sum(1)
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    best = np.flatnonzero(f1 == f1.max())
    return float(candidates[best[len(best) // 2]])


def _harm_scores(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    probs = torch.softmax(features.to(torch.float64) @ weight.T + bias, dim=-1)
    return (1 - probs[:, 0]).numpy()


def cross_validate(
    features: torch.Tensor, targets: torch.Tensor, l2_grid: Sequence[float] = L2_GRID
) -> dict:
    """Choose ``l2`` (out-of-fold log-loss) and the threshold (out-of-fold F1) on one split.

    Returns ``{"l2", "threshold", "oof_log_loss": {l2: loss}, "oof_scores": array}``.
    """
    folds = stratified_folds(targets.tolist())
    harmful = (targets != 0).numpy().astype(int)
    losses, oof_by_l2 = {}, {}
    for l2 in l2_grid:
        oof_log_probs = torch.empty(len(targets), len(CLASSES), dtype=torch.float64)
        for fold in folds:
            rest = np.setdiff1d(np.arange(len(targets)), fold)
            w, b = fit_logistic_regression(features[rest], targets[rest], len(CLASSES), l2)
            oof_log_probs[fold] = torch.log_softmax(features[fold].double() @ w.T + b, dim=-1)
        losses[l2] = float(F.nll_loss(oof_log_probs, targets.long()))
        oof_by_l2[l2] = (1 - oof_log_probs[:, 0].exp()).numpy()
    l2 = min(losses, key=losses.get)
    threshold = best_f1_threshold(oof_by_l2[l2], harmful)
    return {"l2": l2, "threshold": threshold, "oof_log_loss": losses, "oof_scores": oof_by_l2[l2]}


class EmbeddingModerator(Moderator):
    """Flags text whose harm score ``1 - p(benign)`` reaches ``threshold`` (module docstring)."""

    name = "minilm-logreg"
    MEMO_SIZE = 1024

    def __init__(
        self,
        encoder: SentenceEncoder,
        weight: torch.Tensor,
        bias: torch.Tensor,
        threshold: float,
        info: dict | None = None,
    ) -> None:
        if weight.shape[0] != len(CLASSES) or bias.shape != (len(CLASSES),):
            raise ValueError(
                f"weight must be ({len(CLASSES)}, dim) and bias ({len(CLASSES)},) for the classes "
                f"{CLASSES}; got {tuple(weight.shape)} and {tuple(bias.shape)}."
            )
        if not 0 <= threshold <= 1 + 1e-6:
            raise ValueError(f"threshold must be a probability, got {threshold}.")
        self.encoder = encoder
        self.weight, self.bias = weight.to(torch.float64), bias.to(torch.float64)
        self.threshold = float(threshold)
        self.info = info or {}
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def fit(
        cls, encoder: SentenceEncoder, items: Sequence[SafetyItem], l2_grid=L2_GRID
    ) -> EmbeddingModerator:
        """Train on ``items`` (the ``train`` split): cross-validate, then refit on them all."""
        if any(item.split == "test" for item in items):
            raise ValueError("fit() got held-out (split='test') items; train on split='train'.")
        features = encoder.encode([item.text for item in items])
        classes = [CLASSES.index(i.category) if i.harmful else 0 for i in items]
        targets = torch.tensor(classes)
        chosen = cross_validate(features, targets, l2_grid)
        weight, bias = fit_logistic_regression(features, targets, len(CLASSES), chosen["l2"])
        info = {
            "l2": chosen["l2"],
            "oof_log_loss": {str(k): v for k, v in chosen["oof_log_loss"].items()},
            "n_train": len(items),
        }
        return cls(encoder, weight, bias, chosen["threshold"], info)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """The encoder's embeddings of ``texts``, ``(n, dim)`` float64.

        The last ``MEMO_SIZE`` texts' embeddings are kept: a prompt moderated on the way in and
        again inside a combination is encoded once.
        """
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            for text, row in zip(missing, self.encoder.encode(missing), strict=True):
                self._memo[text] = row.to(torch.float64)
        embeddings = torch.stack([self._memo[t] for t in texts])
        for text in texts:
            self._memo.move_to_end(text)
        while len(self._memo) > self.MEMO_SIZE:
            self._memo.popitem(last=False)
        return embeddings

    def class_probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """``p(class | text)``, shape ``(len(texts), len(CLASSES))``, columns in ``CLASSES``."""
        return torch.softmax(self.embed(texts) @ self.weight.T + self.bias, dim=-1)

    def _moderate(self, texts: list[str]) -> list[ModerationResult]:
        probs = self.class_probabilities(texts)
        results = []
        for row in probs.tolist():
            harm = 1 - row[0]
            flagged = harm >= self.threshold
            top = max(range(1, len(CLASSES)), key=lambda k: row[k])
            categories = {c: flagged and k == top for k, c in enumerate(CLASSES) if k}
            scores = {c: row[k] for k, c in enumerate(CLASSES) if k}
            reasons = (f"{CLASSES[top]} (harm score {harm:.2f} >= {self.threshold:.2f})",)
            results.append(
                ModerationResult(flagged, categories, scores, reasons if flagged else (), self.name)
            )
        return results

    def save(self, path: str | Path) -> Path:
        """Write the weights, threshold and training info to one safetensors checkpoint."""
        state = {"weight": self.weight, "bias": self.bias, "threshold": self.threshold}
        return save_checkpoint(path, {**state, "classes": list(CLASSES), "info": self.info})

    @classmethod
    def load(cls, path: str | Path, encoder: SentenceEncoder) -> EmbeddingModerator:
        """Read what ``save`` wrote; the classes must match this version's ``CLASSES``."""
        state = load_checkpoint(path)
        if tuple(state.get("classes", ())) != CLASSES:
            raise ValueError(
                f"{path} was trained for classes {state.get('classes')}, not {CLASSES}."
            )
        return cls(encoder, state["weight"], state["bias"], state["threshold"], state["info"])


def cache_key() -> str:
    """``<set hash>-<recipe hash>``: a changed set or recipe trains a new classifier."""
    recipe = json.dumps({"classes": CLASSES, "l2": L2_GRID, "folds": FOLDS, "seed": SEED})
    return f"{safety_set_hash()}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"


def safety_classifier(
    encoder: SentenceEncoder | None = None, retrain: bool = False
) -> EmbeddingModerator:
    """The classifier trained on the safety set's train split.

    With the default encoder (MiniLM) it is trained once and cached; another ``encoder`` trains
    a fresh classifier each call (the cache is named for MiniLM's embeddings).
    """
    if encoder is not None:
        return EmbeddingModerator.fit(encoder, safety_set("train"))
    from llmcourse.pretrained import minilm

    encoder = minilm()
    path = cache_dir() / "safety-classifier" / f"{cache_key()}.safetensors"
    if path.is_file() and not retrain:
        return EmbeddingModerator.load(path, encoder)
    train = safety_set("train")
    get_logger().info(f"Training the safety classifier on {len(train)} texts (once; cached).")
    moderator = EmbeddingModerator.fit(encoder, train)
    moderator.save(path)
    return moderator


#: What ``load_moderator`` (and a server's ``--safety`` option) accepts.
MODERATORS: tuple[str, ...] = ("phrases", "classifier", "combined")


def load_moderator(kind: str = "combined") -> Moderator:
    """A ready moderator by name: ``"phrases"`` (``SafetyFilter``), ``"classifier"``
    (``safety_classifier()``) or ``"combined"`` (either flags)."""
    from llmcourse.ethics.moderation import CombinedModerator
    from llmcourse.ethics.safety import SafetyFilter

    if kind not in MODERATORS:
        raise ValueError(f"Unknown moderator {kind!r}; choose one of {', '.join(MODERATORS)}.")
    if kind == "phrases":
        return SafetyFilter()
    if kind == "classifier":
        return safety_classifier()
    return CombinedModerator(SafetyFilter(), safety_classifier())
