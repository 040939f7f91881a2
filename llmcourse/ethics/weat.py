"""The Word Embedding Association Test (WEAT; Caliskan, Bryson & Narayanan 2017).

WEAT carries the Implicit Association Test (Greenwald et al. 1998) over to word vectors. Given
two *target* sets X, Y (e.g. male and female first names) and two *attribute* sets A, B (career
and family words), each word's association with the attributes is

    s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)

and the test statistic and effect size are

    s(X, Y, A, B) = sum_{x in X} s(x, A, B) - sum_{y in Y} s(y, A, B)
    d = (mean_{x in X} s(x, A, B) - mean_{y in Y} s(y, A, B)) / std_{w in X u Y} s(w, A, B)

(std with ddof = 1, the sample standard deviation). d > 0 means X is closer to A than Y is;
|d| ~ 0.2 is small, 0.8 large (Cohen's conventions). The one-sided p-value is the share of
equal-size re-partitions (X_i, Y_i) of X u Y with s(X_i, Y_i, A, B) >= s(X, Y, A, B): exact
when the partitions can be enumerated, else estimated from random ones.

Caliskan et al. report, with GloVe trained on 840B tokens of Common Crawl: flowers/insects x
pleasant/unpleasant d = 1.50 (p < 1e-7); male/female names x career/family d = 1.81 (p < 1e-3);
math/arts x male/female terms d = 1.06 (p = .018); science/arts x male/female terms d = 1.24
(p = 1e-2). ``CALISKAN_TESTS`` holds their published word lists (from Nosek et al. 2002's IATs).
A different embedding gives different numbers, and WEAT measures associations in the vectors,
not harm in a downstream system (Blodgett et al. 2020 discuss the gap).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Embed = Callable[[str], Any] | Mapping[str, Any]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Word lists of Caliskan et al. (2017), Science 356(6334), supplementary materials, lower-cased
#: for uncased vectors such as GloVe 6B. Each test is (X, Y, A, B).
CALISKAN_TESTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "flowers_insects_pleasant": (
        _words(
            "aster clover hyacinth marigold poppy azalea crocus iris orchid rose bluebell "
            "daffodil lilac pansy tulip buttercup daisy lily peony violet carnation gladiola "
            "magnolia petunia zinnia"
        ),
        _words(
            "ant caterpillar flea locust spider bedbug centipede fly maggot tarantula bee "
            "cockroach gnat mosquito termite beetle cricket hornet moth wasp blackfly "
            "dragonfly horsefly roach weevil"
        ),
        _words(
            "caress freedom health love peace cheer friend heaven loyal pleasure diamond gentle "
            "honest lucky rainbow diploma gift honor miracle sunrise family happy laughter "
            "paradise vacation"
        ),
        _words(
            "abuse crash filth murder sickness accident death grief poison stink assault "
            "disaster hatred pollute tragedy divorce jail poverty ugly cancer kill rotten vomit "
            "agony prison"
        ),
    ),
    "names_career_family": (
        _words("john paul mike kevin steve greg jeff bill"),
        _words("amy joan lisa sarah diana kate ann donna"),
        _words("executive management professional corporation salary office business career"),
        _words("home parents children family cousins marriage wedding relatives"),
    ),
    "math_arts_gender": (
        _words("math algebra geometry calculus equations computation numbers addition"),
        _words("poetry art dance literature novel symphony drama sculpture"),
        _words("male man boy brother he him his son"),
        _words("female woman girl sister she her hers daughter"),
    ),
    "science_arts_gender": (
        _words("science technology physics chemistry einstein nasa experiment astronomy"),
        _words("poetry art shakespeare dance literature novel symphony drama"),
        _words("brother father uncle grandfather son he his him"),
        _words("sister mother aunt grandmother daughter she hers her"),
    ),
}


@dataclass(frozen=True)
class WEATResult:
    effect_size: float  # Cohen's-d-like, in units of the pooled standard deviation
    p_value: float  # one-sided: P(statistic of a random re-partition >= the observed one)
    statistic: float  # s(X, Y, A, B)
    exact: bool  # True when every re-partition was enumerated
    partitions: int  # how many re-partitions the p-value is based on


def _vectors(words: Sequence[str], embed: Embed, role: str) -> np.ndarray:
    if isinstance(words, str) or len(words) == 0:
        raise ValueError(f"{role} must be a non-empty list of words, got {words!r}.")
    lookup = embed if callable(embed) else embed.__getitem__
    rows, missing = [], []
    for word in words:
        try:
            rows.append(np.asarray(lookup(word), dtype=np.float64).ravel())
        except KeyError:
            missing.append(word)
    if missing:
        raise ValueError(f"{role} words not in the embedding: {missing}. Drop or replace them.")
    return np.stack(rows)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def associations(
    targets: Sequence[str], A: Sequence[str], B: Sequence[str], embed: Embed
) -> np.ndarray:
    """s(w, A, B) for each target word w, shape ``(len(targets),)``."""
    w = _unit(_vectors(targets, embed, "target"))
    a = _unit(_vectors(A, embed, "A"))
    b = _unit(_vectors(B, embed, "B"))
    return (w @ a.T).mean(axis=1) - (w @ b.T).mean(axis=1)


def weat_effect_size(
    X: Sequence[str], Y: Sequence[str], A: Sequence[str], B: Sequence[str], embed: Embed
) -> float:
    """Caliskan et al.'s effect size d (see the module docstring)."""
    return _effect_size(associations(X, A, B, embed), associations(Y, A, B, embed))


def _effect_size(s_x: np.ndarray, s_y: np.ndarray) -> float:
    return float((s_x.mean() - s_y.mean()) / np.concatenate([s_x, s_y]).std(ddof=1))


def weat(
    X: Sequence[str],
    Y: Sequence[str],
    A: Sequence[str],
    B: Sequence[str],
    embed: Embed,
    max_exact: int = 200_000,
    permutations: int = 100_000,
    seed: int = 0,
) -> WEATResult:
    """Effect size and one-sided permutation p-value of a WEAT.

    ``embed`` maps a word to its vector: a ``WordVectors`` (``glove()``), a dict, or a function.
    When ``X u Y`` has at most ``max_exact`` splits into sets of sizes ``|X|``, ``|Y|`` (8 + 8
    words: 12,870), all of them are scored and the p-value is exact; otherwise ``permutations``
    random splits estimate it as ``(hits + 1) / (permutations + 1)``, which is never 0.
    """
    s_x, s_y = associations(X, A, B, embed), associations(Y, A, B, embed)
    effect = _effect_size(s_x, s_y)
    scores = np.concatenate([s_x, s_y])
    n, size_x = len(scores), len(s_x)
    total = scores.sum()
    # s(X_i, Y_i) = sum(X_i) - (total - sum(X_i)) = 2 sum(X_i) - total. The tolerance makes a
    # split that ties with the observed one (the observed split itself, at least) count as a
    # hit despite rounding differences between summation orders.
    observed = 2 * scores[:size_x].sum() - total
    tolerance = 1e-9 * max(1.0, float(np.abs(scores).sum()))
    count = math.comb(n, size_x)
    if count <= max_exact:
        splits = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(n), size_x)),
            dtype=np.int64,
            count=count * size_x,
        ).reshape(count, size_x)
        statistics = 2 * scores[splits].sum(axis=1) - total
        hits = int((statistics >= observed - tolerance).sum())
        return WEATResult(effect, hits / count, float(observed), True, count)
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 10_000):
        rows = min(10_000, permutations - start)
        chosen = np.argsort(rng.random((rows, n)), axis=1)[:, :size_x]
        statistics = 2 * scores[chosen].sum(axis=1) - total
        hits += int((statistics >= observed - tolerance).sum())
    return WEATResult(effect, (hits + 1) / (permutations + 1), float(observed), False, permutations)
