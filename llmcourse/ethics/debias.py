"""Hard debiasing of word vectors along a gender direction, and how much it really removes.

Bolukbasi et al. (2016, "Man is to Computer Programmer as Woman is to Homemaker?"):

1. **direction**: centre each definitional pair (she/he, woman/man, ...) on its mean and take the
   first principal component of the centred vectors: ``g`` (unit length);
2. **neutralise** every word that should carry no gender: ``w ← (w - (w·g) g) / |...|``;
3. **equalise** each pair so its words differ *only* along ``g``: with ``μ`` the pair's mean and
   ``ν = μ - (μ·g) g``, each word becomes ``ν ± sqrt(1 - |ν|²) g``.

Bias is measured with WEAT (``weat``) and the **direct bias**
``mean_w |cos(w, g)|^c`` over gender-neutral words (Bolukbasi et al. 2016, §5; ``c = 1``).
Both drop to about zero by construction. Gonen & Goldberg (2019, "Lipstick on a Pig") showed
the bias is still there: words that were most male- or female-leaning still cluster apart
after debiasing; ``cluster_recoverability`` measures that with 2-means clustering (they report
about 92% accuracy for hard-debiased GloVe). Debiasing the geometry is a partial mitigation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from llmcourse.embeddings import WordVectors
from llmcourse.ethics.wordlists import GENDER_PAIRS


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


def _check_pairs(vectors: WordVectors, pairs: Sequence[tuple[str, str]]) -> None:
    if len(pairs) == 0:
        raise ValueError("Give at least one (female, male) word pair.")
    missing = [w for pair in pairs for w in pair if w not in vectors]
    if missing:
        raise ValueError(f"Pair words not in the vocabulary: {missing}.")


def gender_direction(
    vectors: WordVectors, pairs: Sequence[tuple[str, str]] = GENDER_PAIRS
) -> np.ndarray:
    """Unit vector ``g``: the first principal component of the pair-centred vectors, signed so
    that it points from the first word of each pair towards the second (female → male)."""
    _check_pairs(vectors, pairs)
    centred, differences = [], []
    for a, b in pairs:
        va, vb = _unit_rows(np.stack([vectors[a], vectors[b]]).astype(np.float64))
        mean = (va + vb) / 2
        centred += [va - mean, vb - mean]
        differences.append(vb - va)
    _, _, components = np.linalg.svd(np.stack(centred), full_matrices=False)
    direction = components[0]
    if np.mean(np.stack(differences) @ direction) < 0:
        direction = -direction
    return direction / np.linalg.norm(direction)


def direct_bias(
    vectors: WordVectors, words: Iterable[str], direction: np.ndarray, c: float = 1.0
) -> float:
    """``mean |cos(w, g)|^c`` over ``words`` (Bolukbasi et al. 2016, §5)."""
    rows = [vectors[w] for w in words if w in vectors]
    if not rows:
        raise ValueError("None of the words are in the vocabulary.")
    cos = _unit_rows(np.stack(rows).astype(np.float64)) @ direction
    return float(np.mean(np.abs(cos) ** c))


def hard_debias(
    vectors: WordVectors,
    direction: np.ndarray | None = None,
    gender_specific: Iterable[str] = (),
    equalize: Sequence[tuple[str, str]] = GENDER_PAIRS,
) -> WordVectors:
    """Neutralise every word except the pair words and ``gender_specific`` ones, then
    equalise the ``equalize`` pairs. Returns new unit-length vectors; the input is unchanged."""
    direction = gender_direction(vectors) if direction is None else direction
    _check_pairs(vectors, equalize)
    g = direction / np.linalg.norm(direction)
    out = _unit_rows(vectors.vectors.astype(np.float64))
    keep = {w for pair in equalize for w in pair} | set(gender_specific)
    neutral = np.array([w not in keep for w in vectors.words])
    out[neutral] = _unit_rows(out[neutral] - np.outer(out[neutral] @ g, g))
    for a, b in equalize:
        ia, ib = vectors.index[a], vectors.index[b]
        mean = (out[ia] + out[ib]) / 2
        nu = mean - (mean @ g) * g
        scale = np.sqrt(max(1.0 - float(nu @ nu), 0.0))
        for i in (ia, ib):
            along = (out[i] @ g) * g - (mean @ g) * g
            out[i] = nu + scale * along / np.linalg.norm(along)
    return WordVectors(list(vectors.words), out.astype(np.float32))


def most_biased(
    vectors: WordVectors, direction: np.ndarray, n: int = 500, exclude: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """The ``n`` words leaning most towards ``-g`` (female) and ``+g`` (male), among
    alphabetic words and leaving out ``exclude``."""
    excluded = set(exclude) | {w for pair in GENDER_PAIRS for w in pair}
    candidates = [i for i, w in enumerate(vectors.words) if w.isalpha() and w not in excluded]
    projection = _unit_rows(vectors.vectors[candidates].astype(np.float64)) @ direction
    order = np.argsort(projection)
    female = [vectors.words[candidates[i]] for i in order[:n]]
    male = [vectors.words[candidates[i]] for i in order[::-1][:n]]
    return female, male


def cluster_recoverability(
    vectors: WordVectors, female: Sequence[str], male: Sequence[str], seed: int = 0
) -> float:
    """Accuracy of 2-means clustering at separating two word lists (0.5 = chance; Gonen &
    Goldberg 2019, §4.1). High accuracy after debiasing means the bias is still encoded."""
    if not female or not male:
        raise ValueError("Both word lists must be non-empty.")
    x = _unit_rows(np.stack([vectors[w] for w in (*female, *male)]).astype(np.float64))
    labels = np.array([0] * len(female) + [1] * len(male))
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), 2, replace=False)]
    for _ in range(100):
        assign = np.argmax(x @ centres.T, axis=1)  # cosine k-means on unit vectors
        new = np.stack(
            [x[assign == k].mean(0) if (assign == k).any() else centres[k] for k in (0, 1)]
        )
        new = _unit_rows(new)
        if np.allclose(new, centres):
            break
        centres = new
    accuracy = float(np.mean(assign == labels))
    return max(accuracy, 1.0 - accuracy)
