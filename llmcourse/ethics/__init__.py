"""Bias probes: measuring what associations a model or embedding has absorbed from its data.

- ``weat`` (word vectors) and ``seat`` (sentence encoders): association tests;
- ``lm_probes``: pronoun templates, paired sentences (CrowS-Pairs-style) and intrasentence
  items (StereoSet-style) for causal LMs, with bootstrap intervals (``stats``);
- ``fairness``: demographic parity and equalised odds of a classifier's decisions;
- ``debias``: hard debiasing of word vectors and a test of what it leaves behind;
- ``safety``: a simple filter for generated text;
- ``wordlists``: the course-authored word lists, templates and items the probes use.
"""

from llmcourse.ethics.debias import (
    cluster_recoverability,
    direct_bias,
    gender_direction,
    hard_debias,
    most_biased,
)
from llmcourse.ethics.fairness import (
    demographic_parity_difference,
    equalized_odds_difference,
    group_rates,
)
from llmcourse.ethics.lm_probes import (
    continuation_logprobs,
    intrasentence,
    paired_sentences,
    pronoun_probe,
    sentence_logprobs,
    stereoset_metrics,
)
from llmcourse.ethics.safety import SafetyFilter, SafetyVerdict
from llmcourse.ethics.seat import bleach, seat
from llmcourse.ethics.stats import Estimate, bootstrap_ci, cohens_d, permutation_test
from llmcourse.ethics.weat import CALISKAN_TESTS, WEATResult, weat, weat_effect_size

__all__ = [
    "CALISKAN_TESTS",
    "Estimate",
    "SafetyFilter",
    "SafetyVerdict",
    "WEATResult",
    "bleach",
    "bootstrap_ci",
    "cluster_recoverability",
    "cohens_d",
    "continuation_logprobs",
    "demographic_parity_difference",
    "direct_bias",
    "equalized_odds_difference",
    "gender_direction",
    "group_rates",
    "hard_debias",
    "intrasentence",
    "most_biased",
    "paired_sentences",
    "permutation_test",
    "pronoun_probe",
    "seat",
    "sentence_logprobs",
    "stereoset_metrics",
    "weat",
    "weat_effect_size",
]
