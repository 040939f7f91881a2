"""One dataclass describes every Transformer in the course.

GPT-2, BERT, T5, LLaMA 1/2/3, Mistral, Mixtral, PaLM, JAIS and SmolLM2 differ in a handful of
choices (where the norm sits, which norm, which MLP, how positions enter, whether keys and values
are shared between heads). ``ModelConfig`` names each choice once; ``llmcourse.models`` builds a
model from it and ``llmcourse.models.counting`` does arithmetic on it without building anything.

Configs are frozen: derive a variant with ``config.replace(n_layer=4)``, which validates the
result again. Five sizes may be left ``None`` and are then derived from the others when the
config is built (``n_kv_head``, ``head_dim``, ``d_ff``, ``n_decoder_layer``, ``norm_bias``; as
``transformers`` does for ``head_dim``), so reading a field always gives the value the model
uses; ``replace`` derives them again unless you set them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from llmcourse.utils.checks import check_bool, check_int, check_number, check_type

Architecture = Literal["decoder", "encoder", "encoder-decoder"]
Norm = Literal["layernorm", "rmsnorm"]
NormPlacement = Literal["pre", "post"]
MLP = Literal["gelu", "gelu_tanh", "relu", "swiglu", "geglu"]
Position = Literal["learned", "sinusoidal", "rope", "alibi", "relative", "none"]

# The on/off fields: each must be a real bool (a 0/1 or "yes" is a mistake, not a switch).
_SWITCHES = (
    "parallel_block", "bias", "tie_embeddings", "embedding_norm", "mlm_head", "scale_attention",
)  # fmt: skip
_CHOICES: dict[str, tuple[str, ...]] = {
    "architecture": ("decoder", "encoder", "encoder-decoder"),
    "norm": ("layernorm", "rmsnorm"),
    "norm_placement": ("pre", "post"),
    "mlp": ("gelu", "gelu_tanh", "relu", "swiglu", "geglu"),
    "position": ("learned", "sinusoidal", "rope", "alibi", "relative", "none"),
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters of a Transformer language model.

    Defaults describe GPT-2 small (Radford et al. 2019). Shapes used throughout the package:
    ``d_model`` is the residual-stream width, each of ``n_head`` query heads has ``head_dim``
    channels, and ``n_kv_head`` key/value heads are shared by groups of query heads
    (``n_kv_head == n_head``: multi-head attention; ``1``: multi-query, Shazeer 2019; in between:
    grouped-query, Ainslie et al. 2023).
    """

    name: str = "custom"
    architecture: Architecture = "decoder"
    vocab_size: int = 50257
    context_length: int = 1024
    d_model: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None  # None: n_head (multi-head attention)
    head_dim: int | None = None  # None: d_model // n_head
    d_ff: int | None = None  # None: 4 * d_model
    n_decoder_layer: int | None = None  # encoder-decoder only; None: n_layer

    norm: Norm = "layernorm"
    norm_eps: float = 1e-5
    norm_placement: NormPlacement = "pre"
    parallel_block: bool = False  # PaLM / GPT-J: x + attn(norm(x)) + mlp(norm(x))
    mlp: MLP = "gelu"
    bias: bool = True  # biases in the attention and MLP projections
    norm_bias: bool | None = None  # None: True for layernorm, False for rmsnorm (it has none)

    position: Position = "learned"
    rope_theta: float = 10000.0
    relative_buckets: int = 32  # T5 relative position bias
    relative_max_distance: int = 128
    sliding_window: int | None = None  # Mistral: each token attends to the last W positions

    tie_embeddings: bool = True
    type_vocab_size: int = 0  # BERT's segment (token-type) embeddings
    embedding_norm: bool = False  # BERT: LayerNorm right after the embeddings
    mlm_head: bool = True  # encoder only: BERT's masked-LM head (False: a bare encoder, MiniLM)
    scale_attention: bool = True  # divide scores by sqrt(head_dim); T5 folds it into init

    n_expert: int = 0  # mixture of experts: 0 means a dense MLP
    n_expert_active: int = 2  # top-k experts per token

    dropout: float = 0.0
    init_std: float = 0.02
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_type("ModelConfig.name", self.name, str, "a string")
        for name, options in _CHOICES.items():
            value = getattr(self, name)
            if value not in options:
                close = difflib.get_close_matches(str(value), options, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"ModelConfig.{name}={value!r} is not one of {', '.join(options)}.{hint}"
                )
        for name in ("vocab_size", "context_length", "d_model", "n_layer", "n_head"):
            check_int(f"ModelConfig.{name}", getattr(self, name), 1)
        for name in ("n_kv_head", "head_dim", "d_ff", "n_decoder_layer", "sliding_window"):
            check_int(f"ModelConfig.{name}", getattr(self, name), 1, optional=True)
        for name in ("relative_buckets", "relative_max_distance", "n_expert_active"):
            check_int(f"ModelConfig.{name}", getattr(self, name), 1)
        for name in ("type_vocab_size", "n_expert"):
            check_int(f"ModelConfig.{name}", getattr(self, name), 0)
        for name in _SWITCHES:
            check_bool(f"ModelConfig.{name}", getattr(self, name))
        check_bool("ModelConfig.norm_bias", self.norm_bias, optional=True)
        # norm_eps keeps 1/sqrt(mean(x²) + eps) finite: 0 divides by zero on a zero vector and a
        # negative value gives NaN (the square root of a negative number).
        check_number("ModelConfig.norm_eps", self.norm_eps, 0, low_open=True)
        check_number("ModelConfig.rope_theta", self.rope_theta, 0, low_open=True)
        check_number("ModelConfig.dropout", self.dropout, 0, 1, high_open=True)
        check_number("ModelConfig.init_std", self.init_std, 0, low_open=True)
        check_type("ModelConfig.extra", self.extra, dict, "a dict")
        if self.head_dim is None and self.d_model % self.n_head:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}: each head "
                f"would get {self.d_model / self.n_head:.2f} channels. Choose n_head among the "
                f"divisors of d_model ({_divisors_text(self.d_model)}) or set head_dim explicitly."
            )
        if self.n_kv_head is not None and self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}: in "
                "grouped-query attention every key/value head serves the same number of query "
                f"heads. Choose n_kv_head among {_divisors_text(self.n_head)}."
            )
        if self.n_expert and not 0 < self.n_expert_active <= self.n_expert:
            raise ValueError(
                f"n_expert_active={self.n_expert_active} must be between 1 and "
                f"n_expert={self.n_expert}."
            )
        # Fill in what was left to derive, and remember it, so that ``replace`` derives it again
        # from the new sizes instead of carrying a stale copy (e.g. d_ff after a new d_model).
        derived = frozenset(name for name in _DERIVED if getattr(self, name) is None)
        object.__setattr__(self, "_derived", derived)
        for name in sorted(derived):
            object.__setattr__(self, name, _DERIVED[name](self))

    @property
    def gated_mlp(self) -> bool:
        """SwiGLU and GeGLU have a gate projection: three matrices per MLP instead of two."""
        return self.mlp in ("swiglu", "geglu")

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated like a new config); derived sizes you do
        not set are derived again. Prefer it to ``dataclasses.replace``, which keeps them."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """The fields as given: derived sizes are ``None``, so ``from_dict`` derives them again."""
        values = dataclasses.asdict(self)
        values.update(dict.fromkeys(self._derived))
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown ModelConfig field(s) {unknown}; known fields are {sorted(known)}."
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


def check_model_config(config: Any, name: str = "config") -> None:
    """``TypeError`` unless ``config`` is a ``ModelConfig`` (a zoo name or a dict is a common
    slip: the message says how to get one)."""
    what = "a ModelConfig (llmcourse.models.zoo.get_config('gpt2'), or ModelConfig(...))"
    check_type(name, config, ModelConfig, what)


_DERIVED: dict[str, Callable[[ModelConfig], Any]] = {
    "n_kv_head": lambda config: config.n_head,
    "head_dim": lambda config: config.d_model // config.n_head,
    "d_ff": lambda config: 4 * config.d_model,
    "n_decoder_layer": lambda config: config.n_layer,
    "norm_bias": lambda config: config.norm == "layernorm",
}


def _divisors_text(n: int) -> str:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    shown = divisors if len(divisors) <= 12 else [*divisors[:6], "…", *divisors[-3:]]
    return ", ".join(str(d) for d in shown)
