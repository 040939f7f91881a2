"""Load the model a training run saved, whatever the number of processes that trained it.

``Trainer.save_checkpoint`` gathers every shard first, so ``state["model"]`` is an ordinary
state dict named like the single-process model, and ``state["extra"]`` records the model's class
and config. A run trained by FSDP on 8 GPUs therefore loads here into one CPU process.
"""

from __future__ import annotations

import os

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM, EncoderLM, LanguageModel, Seq2SeqLM
from llmcourse.utils.checkpoint import load_checkpoint

MODEL_CLASSES: dict[str, type[LanguageModel]] = {
    cls.__name__: cls for cls in (DecoderLM, EncoderLM, Seq2SeqLM)
}


def model_from_checkpoint(
    path: str | os.PathLike[str], map_location: str = "cpu", *, check: bool = True
) -> LanguageModel:
    """Rebuild the trained model from a ``Trainer`` checkpoint (weights only, in eval mode).

    ``check=False`` skips the checksum and finiteness checks (``utils.load_checkpoint``)."""
    state = load_checkpoint(path, map_location=map_location, check=check)
    extra = state.get("extra", {}) if isinstance(state, dict) else {}
    name, config = extra.get("model_class"), extra.get("model_config")
    if name not in MODEL_CLASSES or config is None:
        raise ValueError(
            f"{path} does not record an llmcourse model (class {name!r}); load its "
            "state['model'] into the model you built yourself with load_state_dict."
        )
    model = MODEL_CLASSES[name](ModelConfig.from_dict(config))
    model.load_state_dict(state["model"])
    return model.to(map_location).eval()
