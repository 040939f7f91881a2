"""Bias probes: measuring what associations a model or embedding has absorbed from its data."""

from llmcourse.ethics.weat import CALISKAN_TESTS, WEATResult, weat, weat_effect_size

__all__ = ["CALISKAN_TESTS", "WEATResult", "weat", "weat_effect_size"]
