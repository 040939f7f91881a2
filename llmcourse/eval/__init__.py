"""Evaluating language models: likelihood, generated text, classification, calibration, speed.

- ``perplexity``, ``bits_per_byte`` of a model on text (sliding window over long text), and
  ``perplexity_from_loss``, ``bits_per_byte_from_loss`` from a mean loss; ``token_log_probs``;
- ``bleu`` and ``chrf`` (sacrebleu's conventions) and ``rouge_l`` (rouge-score's), for generated
  text; ``compare_systems``: paired bootstrap intervals of corpus BLEU/chrF (Koehn 2004);
- ``accuracy``, ``precision_recall_f1``, ``f1_score`` for labels;
- ``expected_calibration_error`` and ``reliability_diagram``;
- ``score_multiple_choice`` in the MMLU letter format and ``score_choice_likelihoods`` in the
  cloze format (the likelihood of each choice's text);
- ``course_benchmark``: a few hundred four-way questions with keys taken from installed data
  (Python's docstrings, Shakespeare's plays), ``robustness_set``, ``to_records`` for export;
  ``play_questions``, the "which play?" part of it;
- ``parse_gsm8k`` ("#### 42", else the last number), ``last_number``, ``parse_choice`` ("the
  answer is (B)"): answers read from generated text; ``pass_at_k`` (Chen et al. 2021, unbiased)
  and ``mean_pass_at_k`` over problems;
- ``perturb`` and ``robustness_report``: accuracy under typos, casing and whitespace noise;
- ``percentile``, ``summarize_latencies``, ``time_stream``: time to first token, tokens/s,
  p50/p95;
- ``harness`` (imported on its own, needs the ``eval`` extra): the course benchmark as an
  lm-evaluation-harness task, run against ``llmcourse serve``.
"""

from llmcourse.eval.answers import last_number, normalize_number, parse_choice, parse_gsm8k
from llmcourse.eval.bleu import (
    BLEUResult,
    bleu,
    bleu_from_statistics,
    bleu_statistics,
    tokenize_13a,
)
from llmcourse.eval.calibration import (
    ReliabilityDiagram,
    expected_calibration_error,
    reliability_diagram,
)
from llmcourse.eval.chrf import CHRFResult, chrf, chrf_from_statistics, chrf_statistics
from llmcourse.eval.classification import accuracy, f1_score, precision_recall_f1
from llmcourse.eval.latency import (
    LatencySummary,
    StreamTiming,
    percentile,
    summarize_latencies,
    time_stream,
)
from llmcourse.eval.multiple_choice import (
    PLAY_TITLES,
    MCQuestion,
    MCResult,
    format_cloze,
    format_mmlu,
    letter_token_ids,
    play_questions,
    score_choice_likelihoods,
    score_multiple_choice,
)
from llmcourse.eval.passk import mean_pass_at_k, pass_at_k
from llmcourse.eval.perplexity import (
    bits_per_byte,
    bits_per_byte_from_loss,
    perplexity,
    perplexity_from_log_probs,
    perplexity_from_loss,
    sliding_window_nll,
    token_log_probs,
)
from llmcourse.eval.question_sets import (
    SOURCES,
    course_benchmark,
    from_records,
    robustness_set,
    to_records,
)
from llmcourse.eval.robustness import PERTURBATIONS, perturb, robustness_report
from llmcourse.eval.rouge import RougeScore, corpus_rouge_l, lcs_length, rouge_l, rouge_tokenize
from llmcourse.eval.significance import Interval, SystemComparison, compare_systems

__all__ = [
    "PERTURBATIONS",
    "PLAY_TITLES",
    "SOURCES",
    "BLEUResult",
    "CHRFResult",
    "Interval",
    "LatencySummary",
    "MCQuestion",
    "MCResult",
    "ReliabilityDiagram",
    "RougeScore",
    "StreamTiming",
    "SystemComparison",
    "accuracy",
    "bits_per_byte",
    "bits_per_byte_from_loss",
    "bleu",
    "bleu_from_statistics",
    "bleu_statistics",
    "chrf",
    "chrf_from_statistics",
    "chrf_statistics",
    "compare_systems",
    "corpus_rouge_l",
    "course_benchmark",
    "expected_calibration_error",
    "f1_score",
    "format_cloze",
    "format_mmlu",
    "from_records",
    "last_number",
    "lcs_length",
    "letter_token_ids",
    "mean_pass_at_k",
    "normalize_number",
    "parse_choice",
    "parse_gsm8k",
    "pass_at_k",
    "percentile",
    "perplexity",
    "perplexity_from_log_probs",
    "perplexity_from_loss",
    "perturb",
    "play_questions",
    "precision_recall_f1",
    "reliability_diagram",
    "robustness_report",
    "robustness_set",
    "rouge_l",
    "rouge_tokenize",
    "score_choice_likelihoods",
    "score_multiple_choice",
    "sliding_window_nll",
    "summarize_latencies",
    "time_stream",
    "to_records",
    "token_log_probs",
    "tokenize_13a",
]
