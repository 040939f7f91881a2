"""Run alone or by ``torchrun --nproc_per_node=2`` (test_train_distributed.py): the reward
model and DPO tasks at a global batch of 8 pairs. Prints ``RESULT {json}`` on rank 0 with the
per-step losses, which must not depend on the number of processes."""

import copy
import json

import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.tokenizers import CharTokenizer
from llmcourse.train import TrainConfig, Trainer
from llmcourse.train.batches import TensorRows
from llmcourse.train.dpo import DPOTask, preference_batches
from llmcourse.train.preferences import PreferencePair
from llmcourse.train.reward import RewardModel, RewardModelTask, pair_tensors
from llmcourse.utils.distributed import cleanup_distributed, init_distributed


def main() -> None:
    ctx = init_distributed()
    tokenizer = CharTokenizer().train("abcdefg")
    pairs = [
        PreferencePair("ab", "cd" * (k % 3 + 1), "ef" * (k % 2 + 1) + "g" * (k % 4))
        for k in range(16)
    ]
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, context_length=32, d_model=16, n_layer=1, n_head=2
    )
    lm = DecoderLM(config)
    train_config = TrainConfig(
        max_steps=4, batch_size=8 // ctx.world_size, lr=3e-3, weight_decay=0.0, warmup_steps=0,
        schedule="constant", progress_bar=False, log_every=1,
    )  # fmt: skip
    losses = {}
    reward_model, policy = RewardModel(copy.deepcopy(lm)), copy.deepcopy(lm)
    runs = [
        ("reward", reward_model, pair_tensors(tokenizer, pairs), RewardModelTask()),
        ("dpo", policy, preference_batches(tokenizer, pairs), DPOTask(lm, beta=0.5)),
    ]
    for name, model, data, task in runs:
        trainer = Trainer(model, train_config, TensorRows(data), task=task, ctx=ctx)
        losses[name] = [record["loss"] for record in trainer.fit().history]
    if ctx.is_main:
        print("RESULT " + json.dumps(losses), flush=True)
    cleanup_distributed()


if __name__ == "__main__":
    main()
