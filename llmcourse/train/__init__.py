"""Training: objectives, learning-rate schedules, the ``Trainer`` and distributed wrappers.

- ``objectives``: causal LM, masked LM, span corruption (seq2seq), prefix LM, label smoothing;
  ``sentence_objectives``: next-sentence prediction, InfoNCE; ``permutation``: XLNet's masks;
- ``schedule``: warm-up + cosine / linear / constant, as values and as ``LambdaLR`` lambdas;
- ``trainer``: the one ``Trainer`` and ``TrainConfig`` (accumulation, clipping, mixed precision,
  checkpoints, exact resume, DDP/FSDP2/ZeRO-1 under ``torchrun``); ``tasks``: what it trains
  (``Task``: a loss summed over units it counts; ``LanguageModelTask`` is the default), and
  ``rollouts``: the sample-then-learn schedule of tasks with a rollout step (RL);
- ``tensor_parallel``: Megatron-style column/row splits of attention and MLP;
- ``presets``: the course's Shakespeare character model; ``python -m llmcourse.train`` runs it.

Fine-tuning and alignment (lessons 08 and 09), each objective a task on ``Trainer`` next to
its loss: ``sft`` (response-only loss, packing, task metrics), ``lora`` (low-rank adapters),
``distill`` (soft targets), ``heads`` (classification on an encoder), ``seq2seq`` (pairs and
greedy decoding), ``preferences`` (rule-based raters that stand in for people), ``reward``
(Bradley-Terry reward model), ``ppo`` (KL, GAE, clipped losses) and ``ppo_task`` (rollouts and
the PPO loss), ``dpo``, ``grpo`` (group-normalised advantages, policy-gradient losses, token /
sequence / constant averaging, ``GRPOTask``), ``rlvr`` (RL with verifiable rewards on the
arithmetic task: the SFT start, GRPO from it, held-out evaluation) and ``rl_compare`` (more SFT,
DPO, PPO and GRPO at equal compute into a results file; ``python -m llmcourse.train grpo``,
``rlvr_cli``); ``logprobs`` and ``masked`` (``masked_mean``, ``masked_normalize``) are what they
share. ``sgns`` trains skip-gram word vectors
(lesson 02). ``tiny_gpt`` is the base model they start from: the ``presets`` model, pretrained
once and cached.
"""

from llmcourse.nn.masks import prefix_lm_mask
from llmcourse.train.checkpoints import model_from_checkpoint
from llmcourse.train.config import TrainConfig
from llmcourse.train.distill import distillation_loss
from llmcourse.train.dpo import dpo_loss
from llmcourse.train.grpo import (
    GRPOConfig,
    GRPOTask,
    aggregate_loss,
    group_normalized_rewards,
    policy_gradient_loss,
)
from llmcourse.train.lora import LoRALinear, apply_lora, load_lora, merge_lora, save_lora
from llmcourse.train.masked import masked_mean, masked_normalize
from llmcourse.train.objectives import (
    batch_loss,
    causal_lm_loss,
    masked_lm_loss,
    prefix_lm_labels,
    seq2seq_lm_loss,
    shift_right,
    smoothed_cross_entropy,
    token_cross_entropy,
)
from llmcourse.train.permutation import factorization_order, permutation_masks
from llmcourse.train.ppo import gae, kl_estimate, ppo_policy_loss, ppo_value_loss
from llmcourse.train.reward import bradley_terry_loss
from llmcourse.train.schedule import lr_lambda, warmup_constant, warmup_cosine, warmup_linear
from llmcourse.train.sentence_objectives import (
    NextSentenceHead,
    info_nce_loss,
    next_sentence_loss,
    next_sentence_pairs,
)
from llmcourse.train.sft import sft_labels
from llmcourse.train.tasks import LanguageModelTask, Task
from llmcourse.train.trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "GRPOConfig",
    "GRPOTask",
    "LanguageModelTask",
    "LoRALinear",
    "NextSentenceHead",
    "NonFiniteLossError",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "aggregate_loss",
    "apply_lora",
    "batch_loss",
    "bradley_terry_loss",
    "causal_lm_loss",
    "distillation_loss",
    "dpo_loss",
    "factorization_order",
    "gae",
    "group_normalized_rewards",
    "info_nce_loss",
    "kl_estimate",
    "load_lora",
    "lr_lambda",
    "masked_lm_loss",
    "masked_mean",
    "masked_normalize",
    "merge_lora",
    "model_from_checkpoint",
    "next_sentence_loss",
    "next_sentence_pairs",
    "permutation_masks",
    "policy_gradient_loss",
    "ppo_policy_loss",
    "ppo_value_loss",
    "prefix_lm_labels",
    "prefix_lm_mask",
    "save_lora",
    "seq2seq_lm_loss",
    "sft_labels",
    "shift_right",
    "smoothed_cross_entropy",
    "token_cross_entropy",
    "warmup_constant",
    "warmup_cosine",
    "warmup_linear",
]
