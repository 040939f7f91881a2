"""Scaling laws: how loss depends on parameters N, training tokens D and compute C ≈ 6ND.

Units used throughout: N counts parameters, D counts tokens, C counts floating point
operations (FLOPs), and a loss is a cross-entropy in nats per token.

Two research programmes, and one replication:

- Kaplan et al. 2020, *Scaling Laws for Neural Language Models*: N **excludes** embedding
  parameters and compute is quoted in **PF-days** (1 PF-day = 10^15 FLOP/s for a day =
  8.64e19 FLOPs). Their compute-efficient frontier puts most extra compute into model size,
  N_opt ∝ C^0.73 (Table 6), and stops training well before convergence.
- Hoffmann et al. 2022, *Training Compute-Optimal Large Language Models* ("Chinchilla"): N
  counts **all** parameters. Approach 1 (envelope of training curves) gives N_opt ∝ C^0.50 and
  about 20 tokens per parameter (Table 2, Table 3). Approach 3 fits
  L(N, D) = E + A/N^α + B/D^β (eq. 2; fitted values in §3.3 and Appendix D.2), whose minimum
  under C = 6ND is N_opt = G·(C/6)^a and D_opt = G⁻¹·(C/6)^b, with a = β/(α+β),
  b = α/(α+β) and G = (αA / (βB))^(1/(α+β)) (eq. 4).
- Besiroglu et al. 2024, *Chinchilla Scaling: A replication attempt* (Epoch AI): refits
  Approach 3 to data read off Hoffmann's figures and gets exponents compatible with
  Approaches 1 and 2 (a ≈ 0.51).

Why 0.73 against 0.50? Later work traces most of the gap to Kaplan's counting N without
embeddings at small scale and to training-schedule choices (Pearce & Song 2024; Porian et al.
2024). A fitted law describes its own data, tokenizer and recipe: use it for the shape of the
trade-off, not as a constant of nature.

Every function accepts a float or a numpy array and returns the same kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmcourse.scaling._checks import check_positive

PF_DAY = 1e15 * 24 * 3600  # FLOPs in one petaflop/s-day (Kaplan et al. 2020, §1.3): 8.64e19

Number = float | np.ndarray


def training_flops(n_params: Number, n_tokens: Number) -> Number:
    """Training compute C ≈ 6·N·D FLOPs (Kaplan et al. 2020, §2.1; Hoffmann et al. 2022, §3).

    A forward pass costs about 2 FLOPs per parameter per token (one multiply, one add) and the
    backward pass about twice that. The attention-score term (2·n_layer·n_ctx·d_model per token
    forward) is left out, as both papers do; it matters only when n_ctx ≳ 12·d_model.
    """
    check_positive(n_params=n_params, n_tokens=n_tokens)
    return _same_kind(6.0 * np.asarray(n_params, dtype=float) * np.asarray(n_tokens, dtype=float))


@dataclass(frozen=True)
class ParametricFit:
    """Chinchilla's parametric loss L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2).

    E is the loss of an ideal model (the entropy of the text), A/N^α what a finite model adds,
    B/D^β what finite training adds. N counts all parameters, D training tokens.
    """

    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    def loss(self, n_params: Number, n_tokens: Number) -> Number:
        """Predicted loss in nats per token."""
        check_positive(n_params=n_params, n_tokens=n_tokens)
        n = np.asarray(n_params, dtype=float)
        d = np.asarray(n_tokens, dtype=float)
        return _same_kind(self.E + self.A / n**self.alpha + self.B / d**self.beta)

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a: a = β/(α+β)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b: b = α/(α+β) = 1 - a."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """Coefficient G = (αA / (βB))^(1/(α+β)) of N_opt = G·(C/6)^a."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def compute_optimal(self, compute_flops: Number) -> tuple[Number, Number]:
        """(N_opt, D_opt) minimising L(N, D) subject to 6·N·D = C (Hoffmann et al. 2022, eq. 4).

        Setting dL/dN = 0 along D = C/(6N) gives αA/N^α = βB/D^β, whose solution is
        N_opt = G·(C/6)^a and D_opt = (C/6)/N_opt = G⁻¹·(C/6)^b. E does not move the optimum.
        """
        check_positive(compute_flops=compute_flops)
        half_budget = np.asarray(compute_flops, dtype=float) / 6.0
        n_opt = self.G * half_budget**self.a
        return _same_kind(n_opt), _same_kind(half_budget / n_opt)


# Hoffmann et al. 2022 print E=1.69, A=406.4, B=410.7, α=0.34, β=0.28 (§3.3, Appendix D.2).
# The arXiv TeX source carries more digits (E=1.6934, α=0.3392, β=0.2849), as Besiroglu et al.
# 2024 point out; only these reproduce the paper's own Table 2 (a = 0.46, b = 0.54) and its
# Approach-3 optimum of ~40B parameters for Gopher's 5.76e23 FLOPs. The printed values give
# a = 0.452 and 32B, the rounding bias Besiroglu et al. describe.
CHINCHILLA = ParametricFit(
    name="chinchilla",
    E=1.6934,
    A=406.4,
    B=410.7,
    alpha=0.3392,
    beta=0.2849,
    source="Hoffmann et al. 2022, Approach 3 (§3.3), digits of the arXiv TeX source",
)
CHINCHILLA_PRINTED = ParametricFit(
    name="chinchilla-printed",
    E=1.69,
    A=406.4,
    B=410.7,
    alpha=0.34,
    beta=0.28,
    source="Hoffmann et al. 2022, Approach 3 as printed in §3.3 and Appendix D.2",
)
EPOCH = ParametricFit(
    name="epoch",
    E=1.8172,
    A=482.01,
    B=2085.43,
    alpha=0.3478,
    beta=0.3658,
    source="Besiroglu et al. 2024 (Epoch AI), Approach 3 refitted to data read off the plots",
)
FITS: dict[str, ParametricFit] = {fit.name: fit for fit in (CHINCHILLA, CHINCHILLA_PRINTED, EPOCH)}

# Chinchilla Approach 1 publishes exponents (Table 2: a = 0.50, b = 0.50) and a table of
# compute-optimal sizes (Table 3), but no coefficient. A least-squares line through Table 3's
# nine rows in log-log space gives N_opt = 0.09916·C^0.4981, which reproduces every row's
# parameter count to 0.3% (tests/test_scaling.py refits it from the table).
APPROACH_1_COEFFICIENT = 0.09916
APPROACH_1_EXPONENT = 0.4981


def chinchilla_loss(n_params: Number, n_tokens: Number, fit: str = "chinchilla") -> Number:
    """L(N, D) = E + A/N^α + B/D^β under a named fit (Hoffmann et al. 2022, eq. 2).

    ``fit`` is "chinchilla" (Approach 3, unrounded), "chinchilla-printed" (the rounded values
    printed in the paper) or "epoch" (Besiroglu et al. 2024 refit).
    """
    return _fit(fit).loss(n_params, n_tokens)


def isoflop_curve(compute_flops: float, n_params: Number, fit: str = "chinchilla") -> Number:
    """Loss of each model size trained with the same compute: L(N, C/(6N)).

    Plotted against log N this is one of Hoffmann et al.'s isoFLOP profiles (Figure 3 and,
    for the parametric fit, Figure 4): a valley whose floor is the compute-optimal size.
    """
    check_positive(compute_flops=compute_flops, n_params=n_params)
    n = np.asarray(n_params, dtype=float)
    return _fit(fit).loss(n, compute_flops / (6.0 * n))


@dataclass(frozen=True)
class KaplanLaws:
    """Constants of Kaplan et al. 2020. N is non-embedding parameters; compute is in PF-days.

    ``alpha_N, N_c, alpha_D, D_c`` are the joint L(N, D) fit of Table 2 (eq. 1.5); the single
    variable laws of Table 5 (eq. 1.1-1.3) have slightly different values.
    """

    alpha_N: float = 0.076  # Table 2
    N_c: float = 6.4e13  # Table 2, non-embedding parameters
    alpha_D: float = 0.103  # Table 2
    D_c: float = 1.8e13  # Table 2, tokens
    alpha_C_min: float = 0.050  # Table 5 (eq. 1.3)
    C_c_min: float = 3.1e8  # Table 5, PF-days
    alpha_B: float = 0.21  # Table 5, critical batch size
    alpha_S: float = 0.76  # Table 5, steps
    optimal_n_coefficient: float = 1.3e9  # Table 6: N_opt = 1.3e9 · C_min^0.73, C_min in PF-days
    optimal_n_exponent: float = 0.73  # Table 6 (and eq. 6.1)

    @property
    def predicted_compute_exponent(self) -> float:
        """α_C = 1/(1/α_S + 1/α_B + 1/α_N), the exponent theory predicts for L(C_min) (eq. B.7)."""
        return 1.0 / (1.0 / self.alpha_S + 1.0 / self.alpha_B + 1.0 / self.alpha_N)


KAPLAN = KaplanLaws()


def kaplan_loss(n_params: Number, n_tokens: Number = math.inf) -> Number:
    """Early-stopped loss L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (Kaplan et al. 2020, eq. 1.5).

    N counts non-embedding parameters; D = inf gives the converged L(N) = (N_c/N)^α_N. The
    numbers are nats per token on WebText2 with GPT-2's tokenizer, so they are not comparable
    with Chinchilla's losses on MassiveText.
    """
    check_positive(n_params=n_params, n_tokens=n_tokens)
    k = KAPLAN
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(n_tokens, dtype=float)
    return _same_kind(((k.N_c / n) ** (k.alpha_N / k.alpha_D) + k.D_c / d) ** k.alpha_D)


def kaplan_compute_loss(compute_flops: Number) -> Number:
    """Loss on the compute-efficient frontier, L = (C_c/C_min)^α_C (Kaplan et al. 2020, eq. 1.3).

    C_min is non-embedding training compute at a batch size well below the critical one; this
    function takes FLOPs and converts to PF-days.
    """
    check_positive(compute_flops=compute_flops)
    pf_days = np.asarray(compute_flops, dtype=float) / PF_DAY
    return _same_kind((KAPLAN.C_c_min / pf_days) ** KAPLAN.alpha_C_min)


@dataclass(frozen=True)
class ComputeOptimal:
    """A compute-optimal allocation: model size, training tokens and predicted loss.

    ``counts_embeddings`` is False for Kaplan's method, whose N excludes embeddings. ``loss``
    comes from the method's own law: the Approach-3 fit for both Chinchilla methods (the paper
    has no other loss model), the Epoch refit for "epoch", and eq. 1.3 (WebText2 nats, not
    comparable with the others) for "kaplan".
    """

    method: str
    compute_flops: Number
    n_params: Number
    n_tokens: Number
    loss: Number
    counts_embeddings: bool

    @property
    def tokens_per_parameter(self) -> Number:
        return self.n_tokens / self.n_params


METHODS = ("chinchilla-1", "chinchilla-3", "epoch", "kaplan")


def compute_optimal(compute_flops: Number, method: str = "chinchilla-1") -> ComputeOptimal:
    """The model size and token count that minimise loss for a compute budget C (FLOPs).

    Methods (all satisfy 6·N·D = C; the default is the ~20 tokens-per-parameter rule):

    - "chinchilla-1": Hoffmann et al. 2022 Approach 1, N_opt = 0.09916·C^0.4981 (a line through
      Table 3; Table 2 gives a = 0.50): about 20 tokens per parameter.
    - "chinchilla-3": Approach 3, N_opt = G·(C/6)^a with a = β/(α+β) ≈ 0.46 (unrounded fit).
    - "epoch": the same closed form with Besiroglu et al. 2024's refit, a ≈ 0.51.
    - "kaplan": Kaplan et al. 2020 Table 6, N_opt = 1.3e9·(C/PF-day)^0.73 **non-embedding**
      parameters, treating C as their C_min; D = C/(6N).
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    check_positive(compute_flops=compute_flops)
    c = np.asarray(compute_flops, dtype=float)
    if method == "kaplan":
        n = KAPLAN.optimal_n_coefficient * (c / PF_DAY) ** KAPLAN.optimal_n_exponent
        d = c / (6.0 * n)
        loss = kaplan_compute_loss(c)
    elif method == "chinchilla-1":
        n = APPROACH_1_COEFFICIENT * c**APPROACH_1_EXPONENT
        d = c / (6.0 * n)
        loss = CHINCHILLA.loss(n, d)
    else:
        fit = CHINCHILLA if method == "chinchilla-3" else EPOCH
        n, d = fit.compute_optimal(c)
        loss = fit.loss(n, d)
    return ComputeOptimal(
        method=method,
        compute_flops=_same_kind(c),
        n_params=_same_kind(n),
        n_tokens=_same_kind(d),
        loss=_same_kind(loss),
        counts_embeddings=method != "kaplan",
    )


def _fit(name: str) -> ParametricFit:
    if name not in FITS:
        raise ValueError(f"Unknown fit {name!r}; choose one of {', '.join(FITS)}.")
    return FITS[name]


def _same_kind(value: np.ndarray | float) -> Number:
    """A 0-d result goes back as a Python float, so scalar in means scalar out."""
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array
