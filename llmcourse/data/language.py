"""Language identification with py3langid, a maintained fork of langid.py (Lui & Baldwin 2012).

langid.py is a multinomial naive Bayes classifier over byte n-grams (1-4), chosen for being
informative across languages rather than within one domain. py3langid 0.4 ships a retrained
model for 139 languages plus ``zxx`` (no linguistic content) inside its 4.6 MB wheel, so
identification works offline with no download at run time; loading takes about half a second
and a sentence well under a millisecond.

Naive Bayes scores are log-likelihoods; with ``norm_probs=True`` py3langid turns them into a
probability over languages (a softmax), which is what ``min_confidence`` is compared with.
Short snippets are the hard case: a three-word line has few n-grams to vote, so keep the
confidence threshold modest and never judge a whole page by one line of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from llmcourse.data.document import Document, Dropped, Stage


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def supported_languages() -> list[str]:
    """ISO 639 codes the model knows (``"en"``, ``"ar"``, ``"ur"``, ``"zxx"``, ...)."""
    return sorted(_identifier().labels)


def identify_language(text: str) -> tuple[str, float]:
    """``(ISO 639 code, probability)`` of the most likely language of ``text``.

    >>> identify_language("Où est la gare, s'il vous plaît ?")[0]
    'fr'
    """
    if not isinstance(text, str):
        raise TypeError(f"identify_language expects str, got {type(text).__name__}.")
    language, probability = _identifier().classify(text)
    return str(language), float(probability)


class LanguageFilter(Stage):
    """Keep documents in ``languages`` identified with at least ``min_confidence``.

    Drops are counted as ``"language"`` (identified as another language) or
    ``"language_confidence"`` (right language, too unsure). The identified language and its
    probability go to ``meta["language"]`` and ``meta["language_probability"]``.
    Very long documents are judged on their first ``max_chars`` characters, which keeps the cost
    per document bounded and is plenty of evidence for a naive Bayes model.
    """

    name = "language"

    def __init__(
        self,
        languages: Iterable[str] = ("en",),
        min_confidence: float = 0.5,
        max_chars: int = 5000,
    ) -> None:
        self.languages = frozenset(languages)
        unknown = sorted(self.languages - set(supported_languages()))
        if not self.languages or unknown:
            raise ValueError(
                f"Unknown language code(s) {unknown or '(none given)'}; use ISO 639 codes "
                "from llmcourse.data.language.supported_languages(), e.g. 'en', 'ar', 'ur'."
            )
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}.")
        if max_chars <= 0:
            raise ValueError(f"max_chars must be positive, got {max_chars}.")
        self.min_confidence = min_confidence
        self.max_chars = max_chars

    def process(self, document: Document) -> Document | Dropped:
        language, probability = identify_language(document.text[: self.max_chars])
        tagged = document.with_meta(language=language, language_probability=probability)
        if language not in self.languages:
            return Dropped(tagged, "language", f"identified as {language!r} (p={probability:.2f})")
        if probability < self.min_confidence:
            return Dropped(
                tagged,
                "language_confidence",
                f"{language!r} with p={probability:.2f} < {self.min_confidence}",
            )
        return tagged
