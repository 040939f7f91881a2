"""Exercises of lesson 03 (LLM architecture): each compares the learner's function with the
package's own in ``llmcourse.nn`` on random and edge-case inputs."""

from __future__ import annotations

import math

import torch

from llmcourse.grading.compare import close
from llmcourse.grading.spec import Case, Draw, Exercise, Measurement
from llmcourse.grading.wire import Make
from llmcourse.nn import attention as reference_attention
from llmcourse.nn import feedforward, masks, norms, positional

# ---- 03.attention -----------------------------------------------------------------------------

attention = Exercise(
    "03.attention",
    answer="attention",
    reference=reference_attention.scaled_dot_product_attention,
    forbid=["torch.nn.functional.scaled_dot_product_attention"],
    compare=close(names=("output", "weights")),
    section="Attention, derived step by step",
)


def _qkv(draw: Draw, batch: int = 2, heads: int = 3, q_len: int = 5, k_len: int = 5):
    dim = draw.choice([4, 8, 16])
    return (
        draw.randn(batch, heads, q_len, dim),
        draw.randn(batch, heads, k_len, dim),
        draw.randn(batch, heads, k_len, dim),
    )


@attention.variant("the scores are not divided by sqrt(d_k)")
def _unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


@attention.variant("the softmax runs over the queries (dim=-2) instead of the keys")
def _softmax_over_queries(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-2)
    return weights @ v, weights


@attention.variant(
    "the mask is applied after the softmax (masked weights are zeroed, not renormalised)"
)
def _mask_after_softmax(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights


@attention.test(
    points=1,
    hint="Scores compare every query with every key, scaled by the square root of the head "
    "dimension; the softmax turns each query's scores over the keys into weights.",
)
def attention_without_mask(draw: Draw) -> list[Case]:
    return [Case((*_qkv(draw), None), label="no mask")]


@attention.test(
    points=1,
    hint="Where the mask is False a key must get weight exactly 0: its score must be -inf "
    "before the softmax.",
)
def attention_with_causal_mask(draw: Draw) -> list[Case]:
    length = draw.integer(3, 7)
    q, k, v = _qkv(draw, q_len=length, k_len=length)
    return [Case((q, k, v, masks.causal_mask(length)), label=f"causal mask, {length} positions")]


@attention.test(
    points=1,
    hint="The mask must broadcast: a padding mask of shape (batch, 1, 1, k_len) applies to every "
    "head and query; keys and queries may differ in length (q_len < k_len).",
)
def attention_with_padding_and_rectangular_scores(draw: Draw) -> list[Case]:
    k_len = draw.integer(4, 8)
    q, k, v = _qkv(draw, q_len=2, k_len=k_len)
    padded = draw.integer(1, k_len - 1)
    padding = torch.ones(2, k_len, dtype=torch.bool)
    padding[1, :padded] = False
    mask = padding[:, None, None, :]
    return [Case((q, k, v, mask), label=f"padding mask, q_len=2 k_len={k_len}")]


# ---- 03.heads ---------------------------------------------------------------------------------

heads = Exercise(
    "03.heads",
    answer=("split_heads", "merge_heads"),
    reference=(reference_attention.split_heads, reference_attention.merge_heads),
    section="Several heads, by reshaping",
)


def _split(split_heads, merge_heads, x, n_head):
    return split_heads(x, n_head)


def _merge(split_heads, merge_heads, x, y, n_head):
    # merge_heads alone, and as the inverse of the package's split_heads
    return merge_heads(x), merge_heads(reference_attention.split_heads(y, n_head))


@heads.variant("the heads are split without swapping the seq and head axes", answer="split_heads")
def _split_without_transpose(x, n_head):
    batch, seq, width = x.shape
    return x.reshape(batch, n_head, seq, width // n_head)


@heads.test(
    points=1,
    hint="(batch, seq, n_head * head_dim) becomes (batch, n_head, seq, head_dim): head h owns "
    "channels h*head_dim to (h+1)*head_dim - 1, and then the seq and head axes swap.",
    answer=("split_heads", "merge_heads"),
    probe=_split,
)
def split_heads_matches(draw: Draw) -> list[Case]:
    shapes = [((2, 5, 12), 3), ((1, 1, 8), 8), ((3, 4, 6), 1)]
    seq, n_head = draw.integer(2, 6), draw.choice([2, 4])
    shapes.append(((2, seq, n_head * 3), n_head))
    return [
        Case((draw.randn(*shape), n), label=f"x of shape {shape}, n_head={n}")
        for shape, n in shapes
    ]


@heads.test(
    points=1,
    hint="Undo split_heads: swap the axes back, then reshape (the transposed tensor is not "
    "contiguous) to (batch, seq, n_head * head_dim).",
    answer=("split_heads", "merge_heads"),
    probe=_merge,
    compare=close(names=("merge_heads(x)", "merge_heads(split_heads(y))")),
)
def merge_heads_inverts_split(draw: Draw) -> list[Case]:
    n_head = draw.choice([2, 4])
    x = draw.randn(2, n_head, draw.integer(3, 8), 5)
    y = draw.randn(2, draw.integer(3, 8), n_head * 5)
    return [Case((x, y, n_head), label=f"x of shape {tuple(x.shape)}")]


# ---- 03.rmsnorm -------------------------------------------------------------------------------

rmsnorm = Exercise(
    "03.rmsnorm",
    answer="rms_norm",
    reference=norms.rms_norm,
    forbid=[
        "llmcourse.nn.norms.RMSNorm",
        "torch.nn.functional.rms_norm",
        "torch.nn.RMSNorm",
    ],
    section="Norms, MLPs and the block",
)


@rmsnorm.variant("the mean is subtracted first (that is LayerNorm)")
def _layer_norm_like(x, weight, eps=1e-6):
    centred = x - x.mean(-1, keepdim=True)
    return centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * weight


@rmsnorm.variant("eps is added outside the square root")
def _eps_outside(x, weight, eps=1e-6):
    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight


@rmsnorm.test(
    points=1,
    hint="Divide x by the root of the mean of its squares over the last dimension (plus eps), "
    "then multiply by weight. No mean subtraction and no bias: that is LayerNorm.",
)
def rmsnorm_matches(draw: Draw) -> list[Case]:
    shapes = [(4, 8), (2, 3, 16), (1, 1), (draw.integer(1, 4), draw.integer(2, 12))]
    return [
        Case((draw.randn(*shape) * 3 + 1, draw.randn(shape[-1]), 1e-6), label=f"x of shape {shape}")
        for shape in shapes
    ]


@rmsnorm.test(
    points=1, hint="eps goes inside the square root, so an all-zero row gives 0, not NaN."
)
def rmsnorm_handles_zeros_and_eps(draw: Draw) -> list[Case]:
    x = torch.zeros(3, 4)
    x[1] = 1e-3
    x[2] = draw.randn(4) * 1e-2
    return [Case((x, torch.ones(4), 1e-2), label="rows of zeros and tiny values, eps=1e-2")]


# ---- 03.swiglu --------------------------------------------------------------------------------

swiglu = Exercise(
    "03.swiglu",
    answer="swiglu",
    reference=feedforward.swiglu,
    forbid=["llmcourse.nn.feedforward.SwiGLU"],
    section="Norms, MLPs and the block",
)


@swiglu.variant("the gate uses a sigmoid instead of SiLU (x * sigmoid(x))")
def _sigmoid_gate(x, w_gate, w_up, w_down):
    f = torch.nn.functional
    return f.linear(torch.sigmoid(f.linear(x, w_gate)) * f.linear(x, w_up), w_down)


@swiglu.variant("the gate and the up projection are swapped")
def _swapped(x, w_gate, w_up, w_down):
    f = torch.nn.functional
    return f.linear(f.silu(f.linear(x, w_up)) * f.linear(x, w_gate), w_down)


@swiglu.test(
    points=2,
    hint="SwiGLU gates one projection of x by the SiLU of another, then projects back; weights "
    "are in nn.Linear's layout (out_features, in_features).",
)
def swiglu_matches(draw: Draw) -> list[Case]:
    cases = []
    for d_model, d_ff, shape in [(8, 20, (3, 8)), (6, 16, (2, 5, 6))]:
        w_gate, w_up = draw.randn(d_ff, d_model), draw.randn(d_ff, d_model)
        args = (draw.randn(*shape), w_gate, w_up, draw.randn(d_model, d_ff))
        cases.append(Case(args, label=f"x of shape {shape}, d_ff={d_ff}"))
    return cases


# ---- 03.rope ----------------------------------------------------------------------------------

rope = Exercise(
    "03.rope",
    answer=("rope_cos_sin", "apply_rope"),
    reference=(positional.rope_cos_sin, positional.apply_rope),
    forbid=["llmcourse.nn.positional.rotate_half", "llmcourse.nn.positional.RotaryEmbedding"],
    section="Position information",
)


def _angles(rope_cos_sin, apply_rope, positions, head_dim, theta):
    return rope_cos_sin(positions, head_dim, theta)


def _rotation(rope_cos_sin, apply_rope, x, positions):
    # apply_rope with the package's angles, and at position 0 (no rotation)
    cos, sin = positional.rope_cos_sin(positions, x.shape[-1])
    at_zero = positional.rope_cos_sin(torch.zeros_like(positions), x.shape[-1])
    return apply_rope(x, cos, sin), apply_rope(x, *at_zero)


@rope.variant("the angles are not duplicated for both halves", answer="rope_cos_sin")
def _interleaved_angles(positions, head_dim, theta=10000.0):
    inverse = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = positions.float().unsqueeze(-1) * inverse
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos(), angles.sin()


@rope.test(
    points=1,
    hint="Channel pair i turns by position · theta^(-2i/head_dim); both halves of the last "
    "dimension use the same angles; then take cos and sin.",
    answer=("rope_cos_sin", "apply_rope"),
    probe=_angles,
    compare=close(names=("cos", "sin")),
)
def rope_angles_match(draw: Draw) -> list[Case]:
    positions = torch.tensor([[0, 1, 2, 7, 100, draw.integer(3, 500)]])
    return [
        Case((positions, head_dim, theta), label=f"head_dim={head_dim}, theta={theta:g}")
        for head_dim, theta in [(8, 10000.0), (16, 500000.0), (draw.choice([4, 12]), 10000.0)]
    ]


@rope.test(
    points=2,
    hint="Rotate each channel pair (i, i + head_dim/2) by its angle: x·cos plus x with its halves "
    "swapped (and the first negated) times sin; cos and sin of shape (batch, seq, head_dim) "
    "broadcast over the heads.",
    answer=("rope_cos_sin", "apply_rope"),
    probe=_rotation,
    compare=close(names=("apply_rope(x, cos, sin)", "apply_rope at position 0")),
)
def rope_rotation_matches(draw: Draw) -> list[Case]:
    seq = draw.integer(3, 7)
    x = draw.randn(2, 3, seq, 8)
    return [Case((x, torch.arange(seq).expand(2, seq)), label=f"x of shape {tuple(x.shape)}")]


# ---- 03.gqa_project ---------------------------------------------------------------------------
# Turn a trained multi-head model into a grouped-query one (Ainslie et al. 2023, section 2.1):
# each group of n_head / n_kv_head consecutive key (and value) heads becomes one head, their mean.
# Graded on the course's tiny GPT: the conversion against the package's convention, then what it
# buys and costs, measured by the grader on the held-out plays (never sent): the KV cache per
# token, and the loss before uptraining (measured on a loaded machine, 256 windows of 64
# characters: 1.85 nats per character as trained, 2.55 with 2 key/value heads, 2.77 with 1).

GQA_KEYS = ("k_proj.weight", "v_proj.weight", "k_proj.bias", "v_proj.bias")
TINY_GPT_HEADS = 4


def tiny_gpt_state(seed: int | None = None) -> dict[str, torch.Tensor]:
    """The course's pretrained tiny GPT's weights (4 layers, 4 heads of 32); with ``seed``,
    its key and value projections get noise of 10⁻⁴ (fresh inputs every run, same model)."""
    from llmcourse.train.tiny_gpt import pretrained_tiny_gpt

    state = pretrained_tiny_gpt().model.state_dict()
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
        for name, tensor in state.items():
            if name.endswith(GQA_KEYS):
                state[name] = tensor + 1e-4 * torch.randn(tensor.shape, generator=generator)
    return state


def _pool_heads(weight: torch.Tensor, n_head: int, n_kv_head: int, how: str) -> torch.Tensor:
    head_dim = weight.shape[0] // n_head
    group = n_head // n_kv_head
    rest = weight.shape[1:]
    if how == "strided":  # groups h, h + n_kv_head, ...: not the heads repeat_kv pairs up
        return weight.reshape(group, n_kv_head, head_dim, *rest).mean(0).flatten(0, 1)
    if how == "rows":  # the mean over neighbouring rows, whatever head they belong to
        return weight.reshape(n_kv_head * head_dim, group, *rest).mean(1)
    grouped = weight.reshape(n_kv_head, group, head_dim, *rest)
    pooled = grouped[:, 0] if how == "first" else grouped.mean(1)
    return pooled.flatten(0, 1)


def _converted(state, n_head, n_kv_head, how="mean"):
    return {
        name: _pool_heads(tensor, n_head, n_kv_head, how) if name.endswith(GQA_KEYS) else tensor
        for name, tensor in state.items()
    }


def _reference_mha_to_gqa(state_dict, n_head, n_kv_head):
    return _converted(state_dict, n_head, n_kv_head)


def _tiny_gpt_held_out(text: str, n_kv_head: int, state) -> float:
    from llmcourse.models import DecoderLM
    from llmcourse.train.tiny_gpt import pretrained_tiny_gpt

    tiny = pretrained_tiny_gpt()
    model = DecoderLM(tiny.model.config.replace(n_kv_head=n_kv_head)).eval()
    model.load_state_dict(state, strict=True)
    ids = torch.tensor(tiny.tokenizer.encode(text))
    block = tiny.model.config.context_length
    windows = ids[: len(ids) // (block + 1) * (block + 1)].view(-1, block + 1)
    with torch.no_grad():
        logits = model(windows[:, :-1]).logits
    return float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()))


def _kv_cache_and_loss(state, case: Case) -> Measurement:
    text, n_kv_head, before = case.hidden
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise AssertionError(f"mha_to_gqa should return a state dict, got {state!r:.80}.")
    try:
        after = _tiny_gpt_held_out(text, n_kv_head, state)
    except (RuntimeError, KeyError) as error:
        raise AssertionError(
            f"the converted weights do not load into the tiny GPT with n_kv_head={n_kv_head}: "
            f"{str(error)[:200]}"
        ) from None
    # fp16 keys and values per token, summed over layers; multi-head keeps as many as queries.
    keys = [n for n in state if n.endswith("k_proj.weight")]
    per_token = sum(2 * state[n].shape[0] * 2 for n in keys)
    mha = sum(2 * state[n.replace("k_proj", "q_proj")].shape[0] * 2 for n in keys)
    return Measurement(
        "KV cache per token, as a share of multi-head attention's",
        per_token / mha,
        n_kv_head / TINY_GPT_HEADS,
        higher_is_better=False,
        detail=f"{per_token} bytes per token in fp16 instead of {mha}; held-out loss "
        f"{before:.3f} → {after:.3f} nats per character before any uptraining",
    )


gqa_project = Exercise(
    "03.gqa_project",
    answer="mha_to_gqa",
    reference=_reference_mha_to_gqa,
    forbid=["llmcourse.nn.attention.repeat_kv"],
    section="Grouped-query and multi-query attention",
)


@gqa_project.variant("each group keeps its first head instead of the mean of its heads")
def _first_head(state_dict, n_head, n_kv_head):
    return _converted(state_dict, n_head, n_kv_head, "first")


@gqa_project.variant("the groups take every n_kv_head-th head, not consecutive heads")
def _strided_groups(state_dict, n_head, n_kv_head):
    return _converted(state_dict, n_head, n_kv_head, "strided")


@gqa_project.variant("neighbouring rows are averaged across heads, not whole heads")
def _rows_across_heads(state_dict, n_head, n_kv_head):
    return _converted(state_dict, n_head, n_kv_head, "rows")


@gqa_project.test(
    points=2,
    hint="Rows h·head_dim … (h+1)·head_dim - 1 of k_proj.weight belong to head h; view them as "
    "(n_kv_head, group, head_dim, d_model), average over the group axis, flatten back; the same "
    "for v_proj (and biases). Every other tensor stays as it is.",
)
def mha_to_gqa_matches_the_convention(draw: Draw) -> list[Case]:
    cases = []
    for n_head, n_kv_head in ((4, 2), (6, 3), (draw.choice([4, 8]), 1), (4, 4)):
        width, head_dim = 16, draw.integer(2, 5)
        state = {
            "attn.q_proj.weight": draw.randn(n_head * head_dim, width),
            "attn.k_proj.weight": draw.randn(n_head * head_dim, width),
            "attn.v_proj.weight": draw.randn(n_head * head_dim, width),
            "attn.k_proj.bias": draw.randn(n_head * head_dim),
            "attn.v_proj.bias": draw.randn(n_head * head_dim),
        }
        label = f"{n_head} heads of {head_dim} → {n_kv_head} key/value heads"
        cases.append(Case((state, n_head, n_kv_head), label=label))
    return cases


@gqa_project.test(
    points=2,
    hint="The converted state dict must load into the same model with n_kv_head key/value heads: "
    "k_proj and v_proj get n_kv_head·head_dim rows.",
    measure=_kv_cache_and_loss,
    timeout=30.0,
)
def the_tiny_gpt_gets_a_smaller_kv_cache(draw: Draw) -> list[Case]:
    from llmcourse import pretrained

    n_kv_head = draw.choice([1, 2])
    val = pretrained.shakespeare("val")
    start = draw.integer(0, len(val) - 20_000)
    text = val[start : start + 16_640]  # 256 windows of 65 characters
    seed = draw.integer(0, 2**31)
    before = _tiny_gpt_held_out(text, TINY_GPT_HEADS, tiny_gpt_state(seed))
    state = Make("llmcourse.grading.exercises.lesson_03:tiny_gpt_state", seed)
    return [
        Case(
            (state, TINY_GPT_HEADS, n_kv_head),
            label=f"the tiny GPT's 4 heads → {n_kv_head}",
            hidden=(text, n_kv_head, before),
        )
    ]
