"""n-gram language models: counting, add-k and Kneser-Ney smoothing, perplexity.

An n-gram model approximates P(w_1..w_T) = prod_t P(w_t | w_1..w_{t-1}) by conditioning on the
last n-1 words only (Markov assumption; Shannon 1948, Jelinek 1980s). Every sentence is padded
with n-1 start symbols ``<s>`` and ends with ``</s>``, which is predicted like a word so that
probabilities of whole sentences of any length sum to one.

Counts alone (maximum likelihood, c(h, w) / c(h)) give probability 0 to any unseen n-gram and
infinite perplexity on new text. Smoothing moves some mass to the unseen:

- **add-k** (Laplace for k = 1): P(w | h) = (c(h, w) + k) / (c(h) + k V).
- **interpolated Kneser-Ney** (Kneser & Ney 1995; Chen & Goodman 1998): subtract a discount D
  from every seen count and give the saved mass to a lower-order model,
      P(w | h) = max(c(h, w) - D, 0) / c(h) + D N1+(h .) / c(h) * P(w | h'),
  where h' drops the oldest word and N1+(h .) counts the distinct words seen after h. The
  lower orders use *continuation* counts N1+(. h' w), the number of distinct words preceding
  h' w, instead of raw counts: "Francisco" is frequent but follows almost only "San", so it
  should be an unlikely guess after a new context. The unigram level interpolates with 1/V.

Perplexity = exp(-(1/N) sum_t log P(w_t | h_t)), over every predicted token including ``</s>``:
the model is as uncertain as a fair choice among that many words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

BOS, EOS, UNK = "<s>", "</s>", "<unk>"

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def tokenize_lines(text: str) -> list[list[str]]:
    """Lower-cased words of each non-empty line: "Good morrow, Kate!" -> [good, morrow, kate].

    Shakespeare is verse, so a line is a natural sentence-sized unit for these models.
    """
    lines = (_WORD.findall(line.lower()) for line in text.splitlines())
    return [words for words in lines if words]


class NGramLM:
    """An order-``n`` word model with ``"add-k"`` or ``"kneser-ney"`` smoothing.

    The vocabulary is every training word seen at least ``min_count`` times, plus ``</s>`` and
    ``<unk>`` (which rarer and unseen words become); ``<s>`` is context only, never predicted.
    """

    def __init__(
        self,
        order: int = 3,
        smoothing: Literal["add-k", "kneser-ney"] = "kneser-ney",
        k: float = 1.0,
        discount: float = 0.75,
        min_count: int = 1,
    ) -> None:
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be a positive int (1 = unigram), got {order!r}.")
        if smoothing not in ("add-k", "kneser-ney"):
            raise ValueError(f"smoothing must be 'add-k' or 'kneser-ney', got {smoothing!r}.")
        if smoothing == "add-k" and k <= 0:
            raise ValueError(f"add-k needs k > 0 (k = 0 is unsmoothed and gives zeros), got {k}.")
        if smoothing == "kneser-ney" and not 0 < discount < 1:
            raise ValueError(f"the Kneser-Ney discount must lie in (0, 1), got {discount}.")
        self.order, self.smoothing, self.k, self.discount = order, smoothing, k, discount
        self.min_count = min_count
        self.vocab: list[str] = []

    def _pad(self, sentence: Sequence[str]) -> list[str]:
        return [BOS] * (self.order - 1) + [w if w in self._index else UNK for w in sentence] + [EOS]

    def fit(self, sentences: Iterable[Sequence[str]]) -> NGramLM:
        """Count the n-grams (and Kneser-Ney continuation counts) of tokenised sentences."""
        sentences = list(sentences)
        if not sentences or any(isinstance(s, str) for s in sentences):
            raise ValueError("fit() needs a non-empty list of sentences, each a list of str words.")
        frequency = Counter(w for s in sentences for w in s)
        if not all(isinstance(w, str) for w in frequency):
            raise ValueError("fit() needs a non-empty list of sentences, each a list of str words.")
        kept = sorted(w for w, n in frequency.items() if n >= self.min_count)
        self.vocab = [*kept, EOS, UNK]
        self._index = {w: i for i, w in enumerate(self.vocab)}
        n = self.order
        # One stream of padded sentences, counted with C-speed zips; an m-gram is real when it
        # ends in a predicted word (not <s>) and crosses no sentence end (</s> only last).
        stream = [token for s in sentences for token in self._pad(s)]
        self._counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(n + 1)]
        for m in range(1, n + 1):
            grams = Counter(zip(*(stream[j:] for j in range(m)), strict=False))
            self._counts[m] = Counter(
                {g: c for g, c in grams.items() if g[-1] != BOS and EOS not in g[:-1]}
            )
        self._context_total: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(n + 1)]
        self._followers: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(n + 1)]
        # Continuation counts N1+(. g) for every m-gram g, m < n: distinct left neighbours.
        self._continuation: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(n + 1)]
        for m in range(2, n + 1):
            for gram in self._counts[m]:
                self._continuation[m - 1][gram[1:]] += 1
        for m in range(1, n + 1):
            table = (
                self._counts[m] if m == n or self.smoothing == "add-k" else self._continuation[m]
            )
            for gram, count in table.items():
                self._context_total[m][gram[:-1]] += count
                self._followers[m][gram[:-1]] += 1
        return self

    def ngram_counts(self, m: int) -> Counter[tuple[str, ...]]:
        """How often each m-gram (1 <= m <= order) occurred in training, padding included."""
        if not 1 <= m <= self.order:
            raise ValueError(f"m must be between 1 and the model order {self.order}, got {m}.")
        return Counter(self._counts[m])

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | the last n-1 words of context); unknown words are scored as ``<unk>``."""
        if not self.vocab:
            raise ValueError("This NGramLM is not fitted yet: call .fit(sentences) first.")
        history = [BOS] * (self.order - 1) + [w if w in self._index else UNK for w in context]
        history_tuple = tuple(history[len(history) - (self.order - 1) :]) if self.order > 1 else ()
        word = word if word in self._index else UNK
        if self.smoothing == "add-k":
            seen = self._counts[self.order][(*history_tuple, word)]
            total = self._context_total[self.order][history_tuple]
            return (seen + self.k) / (total + self.k * len(self.vocab))
        return self._kneser_ney(word, history_tuple)

    def _kneser_ney(self, word: str, history: tuple[str, ...]) -> float:
        probability = 1.0 / len(self.vocab)  # the uniform floor below the unigram level
        for m in range(1, self.order + 1):
            context = history[len(history) - (m - 1) :] if m > 1 else ()
            total = self._context_total[m][context]
            if total == 0:
                continue  # unseen context: all its mass goes to the lower order
            table = self._counts[m] if m == self.order else self._continuation[m]
            seen = table[(*context, word)]
            backoff = self.discount * self._followers[m][context] / total
            probability = max(seen - self.discount, 0) / total + backoff * probability
        return probability

    def distribution(self, context: Sequence[str] = ()) -> np.ndarray:
        """P(w | context) for every w in ``self.vocab``, shape ``(vocab,)``; sums to one."""
        return np.array([self.prob(w, context) for w in self.vocab])

    def sentence_logprob(self, sentence: Sequence[str]) -> tuple[float, int]:
        """(natural-log probability of the sentence including ``</s>``, tokens predicted)."""
        padded = self._pad(sentence)
        start = self.order - 1
        total = sum(
            math.log(self.prob(padded[i], padded[start:i])) for i in range(start, len(padded))
        )
        return total, len(padded) - start

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """exp of the average negative log-probability per predicted token (``</s>`` included)."""
        log_total, count = 0.0, 0
        for sentence in sentences:
            logprob, n = self.sentence_logprob(sentence)
            log_total += logprob
            count += n
        if count == 0:
            raise ValueError("perplexity() got no sentences.")
        return math.exp(-log_total / count)

    def generate(
        self, max_words: int = 30, seed: int = 0, context: Sequence[str] = ()
    ) -> list[str]:
        """Sample words one at a time until ``</s>`` or ``max_words``."""
        rng = np.random.default_rng(seed)
        words = list(context)
        for _ in range(max_words):
            probs = self.distribution(words)
            word = self.vocab[rng.choice(len(self.vocab), p=probs / probs.sum())]
            if word == EOS:
                break
            words.append(word)
        return words[len(context) :]
