"""Bias probes: measuring what associations a model or embedding has absorbed from its data.

- ``weat`` (word vectors) and ``seat`` (sentence encoders): association tests;
- ``lm_probes``: pronoun templates, paired sentences (CrowS-Pairs-style) and intrasentence
  items (StereoSet-style) for causal LMs, with bootstrap intervals (``stats``);
- ``fairness``: demographic parity and equalised odds of a classifier's decisions;
- ``debias``: hard debiasing of word vectors and a test of what it leaves behind;
- ``moderation``: the ``Moderator`` interface every content filter implements, with results
  shaped like OpenAI's ``/v1/moderations`` response, and ``CombinedModerator``;
- ``safety``: a phrase-list and PII filter; ``safety_classifier``: logistic regression on MiniLM
  sentence embeddings; ``safety_data``: the course's labelled safety set (prompts and outputs,
  harmful or benign, with a held-out split); ``safety_eval``: precision, recall and F1 with
  bootstrap intervals, per-category recall, and the misses;
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
from llmcourse.ethics.moderation import (
    CombinedModerator,
    ModerationResult,
    Moderator,
    moderation_response,
)
from llmcourse.ethics.safety import SafetyFilter, SafetyVerdict
from llmcourse.ethics.safety_classifier import EmbeddingModerator, safety_classifier
from llmcourse.ethics.safety_data import SafetyItem, safety_set
from llmcourse.ethics.safety_eval import (
    FilterReport,
    evaluate,
    evaluate_predictions,
    f1_difference,
    misses,
    stored_report,
    wilson_interval,
)
from llmcourse.ethics.seat import bleach, seat
from llmcourse.ethics.stats import Estimate, bootstrap_ci, cohens_d, permutation_test
from llmcourse.ethics.weat import CALISKAN_TESTS, WEATResult, weat, weat_effect_size

__all__ = [
    "CALISKAN_TESTS",
    "CombinedModerator",
    "EmbeddingModerator",
    "Estimate",
    "FilterReport",
    "ModerationResult",
    "Moderator",
    "SafetyFilter",
    "SafetyItem",
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
    "evaluate",
    "evaluate_predictions",
    "f1_difference",
    "gender_direction",
    "group_rates",
    "hard_debias",
    "intrasentence",
    "misses",
    "moderation_response",
    "most_biased",
    "paired_sentences",
    "permutation_test",
    "pronoun_probe",
    "safety_classifier",
    "safety_set",
    "seat",
    "sentence_logprobs",
    "stereoset_metrics",
    "stored_report",
    "weat",
    "weat_effect_size",
    "wilson_interval",
]
