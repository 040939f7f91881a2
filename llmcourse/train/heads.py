"""Task heads: a sequence classifier on top of a pretrained encoder, and its metrics.

    h = pool(Encoder(x))            (batch, d_model): mean over real tokens, or the [CLS] position
    p(y | x) = softmax(W h + b)     (batch, n_classes)

BERT fine-tunes the encoder together with a fresh linear head (Devlin et al. 2019, §4.1). With
``freeze_encoder=True`` only the head trains (a linear probe): far cheaper, and it shows how
much of the task the pretrained features already separate. Mean pooling is what MiniLM
(sentence-transformers' all-MiniLM-L6-v2) was trained with; ``"cls"`` reads position 0.
``ClassificationTask`` trains it on ``Trainer`` with cross-entropy, on batches that
``ClassificationCollator`` pads.

Metrics: ``classification_metrics`` gives accuracy and per-class and macro F1
(F1 = 2·precision·recall / (precision + recall)), checked against scikit-learn in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.data.collators import pad_batch
from llmcourse.train.batches import to_device
from llmcourse.train.tasks import Metrics, Task

Pooling = Literal["mean", "cls"]


class SequenceClassifier(nn.Module):
    """An encoder (``EncoderLM`` or any model whose output has ``hidden_states``) plus a head.

    ``forward(input_ids, attention_mask=None)`` → logits ``(batch, n_classes)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_classes: int,
        pooling: Pooling = "mean",
        dropout: float = 0.1,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"A classifier needs at least 2 classes, got {n_classes}.")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}.")
        self.encoder, self.pooling = encoder, pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.d_model, n_classes)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for parameter in encoder.parameters():
                parameter.requires_grad_(False)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The sequence vector ``(batch, d_model)``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            hidden = self.encoder(input_ids, attention_mask=attention_mask).hidden_states
        if self.pooling == "cls":
            return hidden[:, 0]
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.dropout(self.pool(input_ids, attention_mask)))


class ClassificationCollator:
    """Examples ``{"input_ids": ids, "labels": class}`` → a batch: ``input_ids`` right-padded
    with ``pad_id``, ``attention_mask`` (1 on real tokens), ``labels`` ``(batch,)``."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [torch.as_tensor(e["input_ids"]).tolist() for e in examples]
        return {
            "input_ids": pad_batch(ids, self.pad_id),
            "attention_mask": pad_batch([[1] * len(i) for i in ids], 0),
            "labels": torch.tensor([int(e["labels"]) for e in examples]),
        }


class ClassificationTask(Task):
    """Cross-entropy of a ``SequenceClassifier`` on ``Trainer``; the unit is an example, and
    ``accuracy`` the share classified right."""

    name = "classifier"

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["labels"].shape[0]

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, Metrics]:
        logits = model(batch["input_ids"], batch.get("attention_mask"))
        loss = F.cross_entropy(logits.float(), batch["labels"], reduction="sum")
        return loss, {"accuracy": (logits.argmax(-1) == batch["labels"]).detach().sum()}


@torch.no_grad()
def predict(
    model: SequenceClassifier, batches: Iterable[dict[str, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predicted classes, true labels)`` over ``batches`` (as ``ClassificationCollator``
    makes them), each ``(n,)`` on the CPU."""
    model.eval()
    device = model.head.weight.device
    predicted, true = [], []
    for batch in batches:
        batch = to_device(batch, device)
        predicted.append(model(batch["input_ids"], batch.get("attention_mask")).argmax(-1).cpu())
        true.append(batch["labels"].cpu())
    return torch.cat(predicted), torch.cat(true)


def classification_metrics(
    predicted: torch.Tensor | Sequence[int], true: torch.Tensor | Sequence[int], n_classes: int
) -> dict[str, float | list[float]]:
    """Accuracy, per-class F1 and macro F1 (the unweighted mean over classes).

    A class that is never predicted and never true gets F1 = 0, as scikit-learn's
    ``zero_division=0`` does.
    """
    predicted, true = torch.as_tensor(predicted), torch.as_tensor(true)
    if predicted.shape != true.shape or predicted.dim() != 1:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and true {tuple(true.shape)} must be equal-length "
            "1-D class ids."
        )
    f1 = []
    for label in range(n_classes):
        tp = int(((predicted == label) & (true == label)).sum())
        fp = int(((predicted == label) & (true != label)).sum())
        fn = int(((predicted != label) & (true == label)).sum())
        f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {
        "accuracy": float((predicted == true).float().mean()) if len(true) else 0.0,
        "f1": f1,
        "macro_f1": sum(f1) / n_classes,
    }
