"""pass@k: the chance that at least one of k sampled answers is correct, estimated without bias.

Chen et al. (2021, Codex, §2.1) sample n ≥ k answers per problem, count the c correct ones, and
estimate pass@k by the probability that a random k-subset of the n contains a correct one:

    pass@k = E_problems[ 1 − C(n − c, k) / C(n, k) ]

Taking k of the n samples directly (or 1 − (1 − c/n)^k) is biased; this is unbiased. The
binomial coefficients overflow for realistic n, so we use their product form

    C(n − c, k) / C(n, k) = Π_{i = n − c + 1}^{n} (1 − k / i)

(Chen et al.'s numerically stable code), which is 0 when n − c < k. pass@1 is then c / n.
"""

from __future__ import annotations

from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem from ``n`` samples of which ``c`` are correct.

    >>> round(pass_at_k(10, 3, 1), 6), round(pass_at_k(4, 1, 2), 6), pass_at_k(5, 4, 2)
    (0.3, 0.5, 1.0)
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    if not 1 <= k <= n:
        raise ValueError(f"Need 1 ≤ k ≤ n to estimate pass@k, got k={k}, n={n}: draw more samples.")
    if c > n:
        raise ValueError(f"c={c} correct answers out of n={n} samples is impossible.")
    if n - c < k:
        return 1.0  # every k-subset holds a correct answer
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


def mean_pass_at_k(n: int | Sequence[int], correct: Sequence[int], k: int) -> float:
    """pass@k averaged over problems: ``correct[j]`` of ``n`` (or ``n[j]``) samples right."""
    if not correct:
        raise ValueError("No problems given.")
    counts = [n] * len(correct) if isinstance(n, int) else list(n)
    if len(counts) != len(correct):
        raise ValueError(f"{len(counts)} sample counts for {len(correct)} problems.")
    return sum(pass_at_k(m, c, k) for m, c in zip(counts, correct, strict=True)) / len(correct)
