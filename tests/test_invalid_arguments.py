"""The public surface refuses nonsense at the boundary (issue 21, item 2).

Every field of every config class has at least one invalid value here, and each must raise
``TypeError``/``ValueError`` whose message names the field and shows the value. The fields are
listed by introspection, so a field added without a case fails ``test_every_field_has_a_case``;
the config classes are found by reading the package's source, so a new config class without a
table fails ``test_every_config_class_has_a_table``. The entry points of DESIGN.md follow in a
second table: each bad call names the argument.
"""

import ast
import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from llmcourse.capstone.config import CapstoneConfig
from llmcourse.config import ModelConfig
from llmcourse.data.quality import GopherThresholds
from llmcourse.infer.config import GenerationConfig
from llmcourse.models.minigpt import MiniGPT, MiniGPTConfig
from llmcourse.train.config import TrainConfig
from llmcourse.train.grpo import GRPOConfig
from llmcourse.train.ladder import LadderConfig
from llmcourse.train.ppo_task import PPOConfig
from llmcourse.train.rlvr import RLVRConfig

PACKAGE = Path(__file__).resolve().parents[1] / "llmcourse"
NAN, INF = math.nan, math.inf


@dataclasses.dataclass(frozen=True)
class Bad:
    """An invalid value, and the text of it the message must show (default: its repr)."""

    value: Any
    shown: str | None = None

    def text(self) -> str:
        return self.shown if self.shown is not None else repr(self.value)


def bad(*values: Any) -> list[Bad]:
    return [v if isinstance(v, Bad) else Bad(v) for v in values]


POSITIVE_INT = bad(0, -1, 2.5, True)
OPTIONAL_POSITIVE_INT = bad(0, -3, 1.5)
NON_NEGATIVE_INT = bad(-1, 1.5)
POSITIVE_NUMBER = bad(0, -1.0, NAN, INF, "1e-3")
NON_NEGATIVE_NUMBER = bad(-0.5, NAN, INF)
SWITCH = bad("yes", 1, None)

CONFIG_CASES: dict[type, dict[str, list[Bad]]] = {
    ModelConfig: {
        "name": bad(3, None),
        "architecture": bad("decoder-only", None),
        "vocab_size": POSITIVE_INT,
        "context_length": POSITIVE_INT,
        "d_model": POSITIVE_INT,
        "n_layer": POSITIVE_INT,
        "n_head": POSITIVE_INT,
        "n_kv_head": OPTIONAL_POSITIVE_INT,
        "head_dim": OPTIONAL_POSITIVE_INT,
        "d_ff": OPTIONAL_POSITIVE_INT,
        "n_decoder_layer": OPTIONAL_POSITIVE_INT,
        "norm": bad("rmsnrom", "batchnorm"),
        "norm_eps": POSITIVE_NUMBER,  # -1 gave NaN logits, 0 a division by zero
        "norm_placement": bad("middle"),
        "parallel_block": SWITCH,
        "mlp": bad("swish"),
        "bias": SWITCH,
        "norm_bias": bad("no", 0),
        "position": bad("rotary"),
        "rope_theta": POSITIVE_NUMBER,
        "relative_buckets": POSITIVE_INT,
        "relative_max_distance": POSITIVE_INT,
        "sliding_window": OPTIONAL_POSITIVE_INT,
        "tie_embeddings": SWITCH,
        "type_vocab_size": NON_NEGATIVE_INT,
        "embedding_norm": SWITCH,
        "mlm_head": SWITCH,
        "scale_attention": SWITCH,
        "n_expert": NON_NEGATIVE_INT,
        "n_expert_active": bad(0, -1, 1.5),
        "dropout": bad(1.0, -0.1, NAN),
        "init_std": POSITIVE_NUMBER,
        "extra": bad([], "x"),
    },
    TrainConfig: {
        "max_steps": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "grad_accum_steps": POSITIVE_INT,
        "lr": POSITIVE_NUMBER,
        "weight_decay": NON_NEGATIVE_NUMBER,
        "betas": bad((0.9,), "0.9", Bad((0.9, 1.0), "1.0"), Bad((-0.1, 0.9), "-0.1")),
        "eps": POSITIVE_NUMBER,
        "grad_clip": POSITIVE_NUMBER,
        "schedule": bad("cosine-ish"),
        "warmup_steps": bad(-1, 2.5, 5000),  # 5000 > max_steps
        "min_lr_ratio": bad(-0.1, 1.5, NAN),
        "objective": bad("clm"),
        "label_smoothing": bad(1.0, -0.1, NAN),
        "aux_loss_weight": NON_NEGATIVE_NUMBER,
        "decoder_start_id": NON_NEGATIVE_INT,
        "seq_len_warmup_steps": NON_NEGATIVE_INT,
        "seq_len_start": POSITIVE_INT,
        "precision": bad("fp8", "bfloat16"),
        "gradient_checkpointing": SWITCH,
        "compile": SWITCH,
        "parallel": bad("deepspeed"),
        "zero1": SWITCH,
        "mixed_precision": bad("fp8"),
        "mixed_precision_reduce": bad("fp64"),
        "eval_every": NON_NEGATIVE_INT,
        "eval_batches": OPTIONAL_POSITIVE_INT,
        "target_val_loss": bad(NAN, "low"),
        "bytes_per_token": POSITIVE_NUMBER,
        "log_every": POSITIVE_INT,
        "checkpoint_every": NON_NEGATIVE_INT,
        "max_seconds": POSITIVE_NUMBER,
        "out_dir": bad(3, ["runs"]),
        "max_nonfinite_steps": NON_NEGATIVE_INT,
        "progress_bar": SWITCH,
        "shuffle": SWITCH,
        "seed": NON_NEGATIVE_INT,
    },
    GenerationConfig: {
        "output_filter": bad("bomb", 3),
        "max_new_tokens": bad(-1, 2.5, "10"),
        "temperature": bad(-1, NAN, INF, "hot"),
        "top_k": bad(0, -5, 2.5),
        "top_p": bad(0, 1.5, NAN),
        "repetition_penalty": bad(0, -1.0, NAN, INF),
        "stop_tokens": bad("eos", [-1], [1.5]),
        "pad_token_id": bad(-1, 1.5),
        "use_cache": SWITCH,
        "cache": bad("paged"),
    },
    MiniGPTConfig: {name: POSITIVE_INT for name in ("vocab_size", "context_length", "d_model")}
    | {"n_layer": POSITIVE_INT, "n_head": bad(0, -1, 2.5, 5)},  # 5 does not divide 768
    GRPOConfig: {
        "prompts_per_rollout": POSITIVE_INT,
        "group_size": bad(1, 0, 2.5),
        "max_new_tokens": POSITIVE_INT,
        "temperature": bad(0, -1.0, NAN),
        "epochs": POSITIVE_INT,
        "minibatch_size": bad(0, -1, 2.5, 48),  # 48 does not divide 16 × 8
        "loss_type": bad("ppo"),
        "normalize_by_std": SWITCH,
        "advantage_eps": NON_NEGATIVE_NUMBER,
        "aggregation": bad("mean"),
        "constant": POSITIVE_NUMBER,
        "clip": POSITIVE_NUMBER,
        "kl_coef": NON_NEGATIVE_NUMBER,
        "kl_placement": bad("advantage"),
        "kl_estimator": bad("k4"),
        "lr": POSITIVE_NUMBER,
        "max_grad_norm": POSITIVE_NUMBER,
        "stop_token": bad(-1, 1.5),
    },
    PPOConfig: {
        "batch_size": bad(0, -1, 2.5, 33),  # 33 is not a multiple of minibatch_size 16
        "max_new_tokens": POSITIVE_INT,
        "temperature": bad(0, -1.0, NAN),
        "ppo_epochs": POSITIVE_INT,
        "minibatch_size": POSITIVE_INT,
        "lr": POSITIVE_NUMBER,
        "clip": POSITIVE_NUMBER,
        "value_clip": POSITIVE_NUMBER,
        "vf_coef": NON_NEGATIVE_NUMBER,
        "gamma": bad(1.5, -0.1, NAN),
        "lam": bad(1.5, -0.1, NAN),
        "kl_coef": NON_NEGATIVE_NUMBER,
        "target_kl": POSITIVE_NUMBER,
        "kl_horizon": POSITIVE_INT,
        "kl_estimator": bad("k4"),
        "whiten_advantages": SWITCH,
        "max_grad_norm": POSITIVE_NUMBER,
        "stop_token": bad(-1, 1.5),
    },
    RLVRConfig: {
        "digits": bad(0, 7, 2.5),
        "ops": bad("/", "", 3),
        "held_out": bad(0, 1, NAN),
        "n_layer": POSITIVE_INT,
        "d_model": bad(0, 2.5, 97),  # 97 does not divide by 4 heads
        "n_head": POSITIVE_INT,
        "context_length": POSITIVE_INT,
        "sft_steps": POSITIVE_INT,
        "sft_batch_size": POSITIVE_INT,
        "sft_lr": POSITIVE_NUMBER,
        "sft_target": bad(0, 1.5, NAN),
        "sft_check_every": POSITIVE_INT,
        "sft_check_problems": POSITIVE_INT,
        "rollouts": POSITIVE_INT,
        "prompts_per_rollout": POSITIVE_INT,
        "group_size": bad(1, 2.5),
        "minibatch_size": POSITIVE_INT,
        "rl_lr": POSITIVE_NUMBER,
        "rl_warmup_steps": NON_NEGATIVE_INT,
        "kl_coef": NON_NEGATIVE_NUMBER,
        "dpo_beta": POSITIVE_NUMBER,
        "dpo_lr": POSITIVE_NUMBER,
        "dpo_batch_size": POSITIVE_INT,
        "dpo_sampling_share": bad(0, 1, NAN),
        "dpo_nll_coef": NON_NEGATIVE_NUMBER,
        "lax_checker": bad("fuzzy"),
        "lax_temperature": POSITIVE_NUMBER,
        "lax_max_new_tokens": POSITIVE_INT,
        "eval_problems": POSITIVE_INT,
        "sample_problems": bad(0, 1000),  # more than the 500 evaluation problems
        "eval_samples": POSITIVE_INT,
    },
    LadderConfig: {
        "d_model": bad(0, 2.5, 130),  # 130 does not divide by 4 heads
        "n_layer": POSITIVE_INT,
        "n_head": POSITIVE_INT,
        "context_length": POSITIVE_INT,
        "steps": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "lr": POSITIVE_NUMBER,
        "warmup_steps": bad(-1, 601),  # more than the 600 steps
        "eval_every": POSITIVE_INT,
        "eval_windows": POSITIVE_INT,
    },
    CapstoneConfig: {
        "size": bad("huge", 1),
        "seed": bad(-1, 1.5),
        "vocab_size": bad(0, 299, 2.5),  # below 256 bytes + the chat tokens
        "tokenizer_chars": POSITIVE_INT,
        "n_layer": POSITIVE_INT,
        "d_model": bad(0, 130),  # 130 does not divide by 4 heads
        "n_head": POSITIVE_INT,
        "context_length": POSITIVE_INT,
        "pretrain_steps": POSITIVE_INT,
        "pretrain_batch_size": POSITIVE_INT,
        "pretrain_lr": POSITIVE_NUMBER,
        "sft_steps": POSITIVE_INT,
        "sft_batch_size": POSITIVE_INT,
        "sft_lr": POSITIVE_NUMBER,
        "sft_arithmetic_share": bad(-0.1, 1.5, NAN),
        "sft_instructions_per_play": POSITIVE_INT,
        "digits": bad(0, 5, 1.5),
        "held_out": bad(0.0, 1.0, NAN),
        "rl_seeds": bad((), Bad((-1,), "-1"), "0"),
        "rollouts": POSITIVE_INT,
        "prompts_per_rollout": POSITIVE_INT,
        "group_size": POSITIVE_INT,
        "minibatch_size": bad(0, 7),  # 7 does not divide the 128 responses of a rollout
        "rl_lr": POSITIVE_NUMBER,
        "eval_arithmetic": POSITIVE_INT,
        "eval_perplexity_tokens": POSITIVE_INT,
        "eval_multiple_choice": POSITIVE_INT,
        "cpu_watts": POSITIVE_NUMBER,
    },
    GopherThresholds: {
        "min_words": bad(-1, 2.5, 200_000),  # above max_words
        "max_words": bad(-1, 10),  # below min_words
        "min_mean_word_length": bad(-1.0, NAN, 11.0),  # above the maximum
        "max_mean_word_length": bad(-1.0, NAN, 2.0),  # below the minimum
        "max_symbol_to_word": bad(-0.1, NAN),
        "max_bullet_lines": bad(1.5, -0.1),
        "max_ellipsis_lines": bad(1.5, NAN),
        "min_alpha_words": bad(1.5, -0.1),
        "min_stop_words": bad(-1, 2.5),
        "max_duplicate_lines": bad(1.5),
        "max_duplicate_paragraphs": bad(1.5),
        "max_duplicate_line_chars": bad(1.5),
        "max_duplicate_paragraph_chars": bad(1.5),
        "max_top_ngram_chars": bad([0.2], Bad({2: 1.5}, "1.5"), Bad({0: 0.2}, "0")),
        "max_duplicate_ngram_chars": bad("0.1", Bad({5: -0.1}, "-0.1")),
    },
}

# Configuration-like classes found in the source that are validated elsewhere, and where.
NOT_HERE = {
    "ServerSettings": "the server's (llmcourse.serve, issue 21 item 1: request validation)",
    "StreamOptions": "a pydantic request schema of the server (validated by pydantic)",
    "SamplingParams": "the server's per-request settings, checked by GenerationConfig",
    "GradeOptions": "the grader's command-line options (llmcourse.grading)",
}
CONFIG_NAME = re.compile(r"(Config|Thresholds|Settings|Options|Params)$")


def config_classes_in_source() -> set[str]:
    """Class names that look like configuration, read from the source (nothing is imported)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found |= {
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef) and CONFIG_NAME.search(node.name)
        }
    return found


def test_every_config_class_has_a_table():
    covered = {cls.__name__ for cls in CONFIG_CASES} | set(NOT_HERE)
    assert config_classes_in_source() - covered == set()


@pytest.mark.parametrize("cls", list(CONFIG_CASES), ids=lambda cls: cls.__name__)
def test_every_field_has_a_case(cls):
    fields = {field.name for field in dataclasses.fields(cls)}
    missing = fields - set(CONFIG_CASES[cls])
    assert not missing, f"{cls.__name__}: add invalid values for {sorted(missing)}"
    assert not set(CONFIG_CASES[cls]) - fields, "a case for a field that no longer exists"
    cls()  # the defaults themselves are valid


CASES = [
    pytest.param(cls, name, case, id=f"{cls.__name__}.{name}={case.value!r}")
    for cls, table in CONFIG_CASES.items()
    for name, cases in table.items()
    for case in cases
]


@pytest.mark.parametrize(("cls", "name", "case"), CASES)
def test_invalid_field_is_refused_naming_field_and_value(cls, name, case):
    with pytest.raises((TypeError, ValueError)) as error:
        cls(**{name: case.value})
    message = str(error.value)
    assert name in message, message
    assert case.text() in message, message


def test_replace_validates_again():
    config = ModelConfig(vocab_size=11, context_length=8, d_model=8, n_layer=1, n_head=2)
    with pytest.raises(ValueError, match=r"ModelConfig\.norm_eps must be a finite number > 0"):
        config.replace(norm_eps=-1)
    with pytest.raises(ValueError, match=r"TrainConfig\.lr must be a finite number > 0, got nan"):
        TrainConfig().replace(lr=NAN)


# ---- entry points ------------------------------------------------------------------------------


def tiny_model() -> nn.Module:
    from llmcourse.models import DecoderLM

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=11, context_length=8, d_model=8, n_layer=1, n_head=2)
    return DecoderLM(config).eval()


def trained_bpe():
    from llmcourse.tokenizers import BPETokenizer

    tokenizer = BPETokenizer()
    tokenizer.train("hello world, hello there", vocab_size=260)
    return tokenizer


def entry_points() -> list[tuple[str, Callable[[], Any], str]]:
    """(id, a bad call, text the message must contain: the argument's name)."""
    from llmcourse.data.dedup import jaccard_estimate, minhash, near_duplicate_groups
    from llmcourse.data.loaders import RandomWindows
    from llmcourse.eval import bleu, perplexity
    from llmcourse.infer import generate
    from llmcourse.models import DecoderLM, EncoderLM, Seq2SeqLM, zoo
    from llmcourse.models.counting import count_parameters, kv_cache_bytes
    from llmcourse.models.hf import from_hf, to_hf
    from llmcourse.quant import Int4Linear, quantize, sqnr
    from llmcourse.scaling import chinchilla_loss, compute_optimal, training_flops
    from llmcourse.tokenizers import BPETokenizer
    from llmcourse.train import (
        LoRALinear,
        Trainer,
        apply_lora,
        dpo_loss,
        gae,
        masked_mean,
        masked_normalize,
    )

    config = tiny_model().config
    ids = torch.tensor([[1, 2, 3]])
    rows = RandomWindows(torch.arange(64) % 11, 8, 16, seed=0)
    quick = TrainConfig(max_steps=2, warmup_steps=0, progress_bar=False)
    v = torch.randn(3)
    layers = nn.Sequential(nn.Linear(64, 64))
    return [
        ("get_config unknown", lambda: zoo.get_config("gpt5"), "gpt5"),
        ("count_parameters name", lambda: count_parameters("gpt2"), "config"),
        ("kv_cache_bytes seq_len", lambda: kv_cache_bytes(config, -1), "seq_len"),
        ("kv_cache_bytes seq_len float", lambda: kv_cache_bytes(config, 2.5), "seq_len"),
        ("kv_cache_bytes batch", lambda: kv_cache_bytes(config, 4, batch_size=0), "batch_size"),
        ("kv_cache_bytes dtype", lambda: kv_cache_bytes(config, 4, dtype="float12"), "dtype"),
        ("compute_optimal negative", lambda: compute_optimal(-1.0), "compute"),
        ("compute_optimal nan", lambda: compute_optimal(NAN), "compute"),
        ("compute_optimal method", lambda: compute_optimal(1e20, method="x"), "method"),
        ("training_flops", lambda: training_flops(-1, 10), "n_params"),
        ("chinchilla_loss", lambda: chinchilla_loss(0, 1e9), "n_params"),
        ("chinchilla_loss fit", lambda: chinchilla_loss(1e9, 1e9, fit="x"), "fit"),
        ("DecoderLM name", lambda: DecoderLM("gpt2"), "config"),
        ("DecoderLM dict", lambda: DecoderLM({"d_model": 8}), "config"),
        ("EncoderLM decoder", lambda: EncoderLM(config), "architecture"),
        ("DecoderLM ids out of vocab", lambda: tiny_model()(ids * 50), "vocab_size"),
        (
            "MiniGPT ids out of vocab",
            lambda: MiniGPT(MiniGPTConfig(11, 8, 8, 1, 2))(ids * 50),
            "idx",
        ),
        ("MiniGPT float ids", lambda: MiniGPT(MiniGPTConfig(11, 8, 8, 1, 2))(ids.float()), "idx"),
        ("Seq2SeqLM decoder", lambda: Seq2SeqLM(config), "architecture"),
        ("from_hf None", lambda: from_hf(None), "hf_model"),
        ("to_hf Linear", lambda: to_hf(nn.Linear(2, 2)), "model"),
        ("BPE vocab_size", lambda: BPETokenizer().train("hello world", vocab_size=10), "vocab"),
        ("BPE encode int", lambda: BPETokenizer().encode(3), "str"),
        ("BPE decode negative", lambda: trained_bpe().decode([-1]), "id -1"),
        ("generate max_new_tokens", lambda: generate(tiny_model(), ids, -1), "max_new_tokens"),
        ("generate temperature", lambda: generate(tiny_model(), ids, 2, temperature=NAN), "temp"),
        ("generate top_k", lambda: generate(tiny_model(), ids, 2, top_k=0), "top_k"),
        ("generate top_p", lambda: generate(tiny_model(), ids, 2, top_p=0), "top_p"),
        ("generate float ids", lambda: generate(tiny_model(), ids.float(), 2), "token ids"),
        ("generate ids out of vocab", lambda: generate(tiny_model(), ids * 50, 2), "vocab"),
        ("generate model name", lambda: generate("gpt2", ids, 2), "model"),
        ("quantize a Linear", lambda: quantize(nn.Linear(64, 64)), "nn.Linear itself"),
        ("quantize group_size 0", lambda: quantize(layers, "int4", 0), "group_size"),
        ("quantize group_size float", lambda: quantize(layers, "int4", 2.5), "group_size"),
        ("quantize scheme", lambda: quantize(layers, "int3"), "scheme"),
        ("quantize threshold", lambda: quantize(layers, "llm.int8", threshold=-1), "threshold"),
        ("quantize model name", lambda: quantize("gpt2"), "model"),
        ("Int4Linear group_size", lambda: Int4Linear(nn.Linear(64, 64), 0), "group_size"),
        ("sqnr shapes", lambda: sqnr(torch.ones(3), torch.ones(4)), "shapes"),
        ("sqnr list", lambda: sqnr([1.0], [1.0]), "ref"),
        ("LoRALinear r", lambda: LoRALinear(nn.Linear(4, 4), r=0), "rank r"),
        ("LoRALinear alpha", lambda: LoRALinear(nn.Linear(4, 4), alpha=NAN), "alpha"),
        ("LoRALinear dropout", lambda: LoRALinear(nn.Linear(4, 4), dropout=1.0), "dropout"),
        ("apply_lora r", lambda: apply_lora(tiny_model(), ["q_proj"], r=-2), "rank r"),
        ("Trainer model name", lambda: Trainer("gpt2", TrainConfig(), rows), "model"),
        ("Trainer config dict", lambda: Trainer(tiny_model(), {"lr": 1e-3}, rows), "config"),
        ("Trainer.fit steps", lambda: Trainer(tiny_model(), quick, rows).fit(steps=-1), "steps"),
        (
            "Trainer.evaluate max_batches",
            lambda: Trainer(tiny_model(), quick, rows, rows).evaluate(max_batches=0),
            "max_batches",
        ),
        ("minhash num_perm", lambda: minhash("a b c d e f", num_perm=0), "num_perm"),
        ("minhash ngram", lambda: minhash("a b c d e f", ngram=0), "ngram"),
        ("minhash seed", lambda: minhash("a b c d e f", seed=-1), "seed"),
        ("minhash text", lambda: minhash(3), "str"),
        (
            "jaccard_estimate lengths",
            lambda: jaccard_estimate(minhash("a b c"), minhash("a b c", num_perm=64)),
            "shape",
        ),
        ("near_duplicate_groups threshold", lambda: near_duplicate_groups(["a"], 2.0), "threshold"),
        ("near_duplicate_groups one string", lambda: near_duplicate_groups("abc"), "docs"),
        ("masked_mean shapes", lambda: masked_mean(torch.ones(3, 4), torch.ones(3, 5)), "mask"),
        ("masked_mean dim", lambda: masked_mean(torch.ones(3, 4), dim=5), "dim=5"),
        ("masked_normalize constant", lambda: masked_normalize(v, constant=NAN), "constant"),
        ("dpo_loss beta", lambda: dpo_loss(v, v, v, v, beta=0), "beta"),
        ("dpo_loss shapes", lambda: dpo_loss(v, torch.ones(4), v, v), "shape"),
        ("gae gamma", lambda: gae(torch.ones(1, 3), torch.ones(1, 3), gamma=2.0), "gamma"),
        ("gae lam", lambda: gae(torch.ones(1, 3), torch.ones(1, 3), lam=-1.0), "lam"),
        ("bleu lengths", lambda: bleu(["a b"], [["a b", "c d"]]), "reference"),
        ("bleu one string", lambda: bleu("a b", [["a b"]]), "hypothesis strings"),
        ("perplexity out of vocab", lambda: perplexity(tiny_model(), ids * 50), "vocab"),
        ("perplexity one token", lambda: perplexity(tiny_model(), ids[:, :1]), "token"),
    ]


@pytest.mark.parametrize(("call", "expected"), [(c, e) for _, c, e in entry_points()],
                         ids=[name for name, _, _ in entry_points()])  # fmt: skip
def test_entry_point_refuses_bad_arguments_by_name(call, expected):
    with pytest.raises((TypeError, ValueError)) as error:
        call()
    assert expected.lower() in str(error.value).lower(), str(error.value)


def test_a_refused_apply_lora_leaves_the_model_untouched():
    from llmcourse.train import apply_lora

    model = tiny_model()
    with pytest.raises(ValueError, match="LoRA scale alpha"):
        apply_lora(model, ["q_proj"], alpha=0)
    assert all(p.requires_grad for p in model.parameters())  # nothing was frozen


def test_quantize_skip_takes_one_name_as_a_name():
    from llmcourse.quant import Int8Linear, quantize

    model = nn.Sequential()
    model.add_module("body", nn.Linear(8, 8))
    model.add_module("lm_head", nn.Linear(8, 8))
    quantized = quantize(model, skip="lm_head")  # not the letters l, m, _, h, e, a, d
    assert isinstance(quantized.body, Int8Linear) and isinstance(quantized.lm_head, nn.Linear)
