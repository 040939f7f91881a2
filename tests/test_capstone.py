"""``llmcourse capstone``: the chat format, the cache keys, and a whole ``tiny`` run whose report
is checked against the stages' own outputs, then served again from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmcourse.capstone.chat import (
    ChatArithmeticReward,
    ChatCodec,
    chat_prompt_ids,
    load_chat_model,
    new_tokenizer,
    prompt_ids,
    render_chat,
    reply_text,
    sft_mix,
    stop_id,
)
from llmcourse.capstone.cli import main, parse_changes
from llmcourse.capstone.config import CapstoneConfig, stage_key
from llmcourse.data.arithmetic import ArithmeticProblems, Problem

TEXT = "To be, or not to be, that is the question: 12 + 345 = 357.\n" * 50


@pytest.fixture(scope="module")
def tokenizer():
    return new_tokenizer().train(TEXT, vocab_size=300)


def test_render_chat_is_chatml_without_a_system_prompt():
    text = render_chat([{"role": "user", "content": "3+4="}])
    assert text == "<|im_start|>user\n3+4=<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="role"):
        render_chat([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="'role' and 'content'"):
        render_chat([{"content": "hi"}])


def test_digits_are_single_tokens_and_specials_are_reserved(tokenizer):
    ids = tokenizer.encode("<|im_start|>user\n37+45=<|im_end|>")
    pieces = [tokenizer.decode([i]) for i in ids]
    assert pieces[0] == "<|im_start|>" and pieces[-1] == "<|im_end|>"
    assert pieces[-7:-1] == ["3", "7", "+", "4", "5", "="]
    # Every 2-digit problem has the same prompt length, so GRPO batches need no padding.
    problems = ArithmeticProblems(2).sample(20, torch.Generator().manual_seed(0))
    assert prompt_ids(tokenizer, problems).shape[0] == 20


def test_history_is_truncated_to_fit_oldest_turns_first(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}]
    for n in range(6):
        messages += [{"role": "user", "content": f"question {n} " * 3},
                     {"role": "assistant", "content": f"answer {n}"}]  # fmt: skip
    messages.append({"role": "user", "content": "last question"})
    full = chat_prompt_ids(tokenizer, messages, 10_000)
    cut = chat_prompt_ids(tokenizer, messages, len(full) // 2)
    text = tokenizer.decode(cut)
    assert len(cut) <= len(full) // 2
    assert text.endswith("last question<|im_end|>\n<|im_start|>assistant\n")
    assert "Be brief." in text and "question 0" not in text
    assert len(chat_prompt_ids(tokenizer, messages[-1:], 5)) == 5  # one long turn: its tail


def test_reward_reads_the_problem_from_the_prompt(tokenizer):
    problems = [Problem(3, 4), Problem(12, 30)]
    prompts = torch.cat([prompt_ids(tokenizer, problems[:1]), prompt_ids(tokenizer, problems[:1])])
    end = stop_id(tokenizer)
    right, wrong = [*tokenizer.encode("7"), end, 0], [*tokenizer.encode("8"), end]
    assert ChatArithmeticReward(tokenizer)(prompts, [right, wrong]).tolist() == [1.0, 0.0]
    assert reply_text(tokenizer, [*tokenizer.encode("72"), end, *tokenizer.encode("9")]) == "72"
    with pytest.raises(ValueError, match="2 prompts but 1"):
        ChatArithmeticReward(tokenizer)(prompts, [right])


def test_sft_mix_has_the_share_of_arithmetic_and_fits(tokenizer):
    data = sft_mix(tokenizer, ArithmeticProblems(1, held_out=0.3), 40, 0.25, 2, 96, seed=0)
    kinds = [e["kind"] for e in data]
    assert len(data) == 40 and kinds.count("arithmetic") == 10
    assert all(len(e["prompt_ids"]) + len(e["response_ids"]) <= 96 for e in data)
    assert all(e["response_ids"][-1] == stop_id(tokenizer) for e in data)


def test_sft_mix_batches_hold_one_kind(tokenizer):
    """With batch_size, each run of batch_size examples is one kind (short arithmetic batches
    are not padded to an instruction's length); the kinds' counts do not change."""
    problems = ArithmeticProblems(1, held_out=0.3)
    plain = sft_mix(tokenizer, problems, 64, 0.75, 2, 96, seed=0)
    data = sft_mix(tokenizer, problems, 64, 0.75, 2, 96, seed=0, batch_size=8)
    kinds = [e["kind"] == "arithmetic" for e in data]
    assert sorted(kinds) == sorted(e["kind"] == "arithmetic" for e in plain)
    assert all(len(set(kinds[i : i + 8])) == 1 for i in range(0, 64, 8))
    assert kinds != sorted(kinds) and kinds != sorted(kinds, reverse=True)  # batches shuffled
    odd = sft_mix(tokenizer, problems, 60, 0.5, 2, 96, seed=0, batch_size=8)  # 30 + 30
    assert all(
        len({e["kind"] == "arithmetic" for e in odd[i : i + 8]}) == 1 for i in range(0, 48, 8)
    )
    with pytest.raises(ValueError, match="batch_size"):
        sft_mix(tokenizer, problems, 8, 0.5, 2, 96, seed=0, batch_size=0)


def test_codec_decodes_without_special_tokens(tokenizer):
    codec = ChatCodec(tokenizer, max_prompt_tokens=64)
    ids = codec.encode("<|im_start|>assistant\nhello<|im_end|>")
    assert codec.decode(ids) == "assistant\nhello"
    assert stop_id(tokenizer) in codec.stop_ids
    assert codec.chat_prompt([{"role": "user", "content": "hi"}]).endswith("assistant\n")


def test_cache_keys_follow_the_fields_a_stage_reads():
    config = CapstoneConfig.for_size("tiny")
    tok = stage_key(config, "tokenizer")
    assert stage_key(config.replace(sft_lr=0.5), "tokenizer") == tok
    assert stage_key(config.replace(vocab_size=500), "tokenizer") != tok
    pre = stage_key(config, "pretrain", tok)
    assert stage_key(config.replace(sft_steps=3), "pretrain", tok) == pre
    assert stage_key(config, "pretrain", "another-tokenizer") != pre
    assert stage_key(config, "grpo", "x", seed=0) != stage_key(config, "grpo", "x", seed=1)
    assert config.hash != config.replace(rollouts=5).hash


def test_bad_choices_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="size must be one of"):
        CapstoneConfig.for_size("huge")
    with pytest.raises(ValueError, match="sft_arithmetic_share"):
        CapstoneConfig(sft_arithmetic_share=1.5)
    with pytest.raises(ValueError, match="NAME one of"):
        parse_changes(["widht=3"])
    with pytest.raises(ValueError, match="not a Python literal"):
        parse_changes(["d_model=wide"])
    assert parse_changes(["d_model=96", "rl_seeds=(0, 1)"]) == {"d_model": 96, "rl_seeds": (0, 1)}
    assert main(["--size", "tiny", "--set", "nope=1"]) == 2


# -- a whole tiny run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("capstone")
    assert main(["--size", "tiny", "--out", str(out), "--quiet"]) == 0
    return out


def _stage(out: Path, name: str) -> dict:
    (folder,) = [f for f in (out / "stages").iterdir() if f.name.rsplit("-", 1)[0] == name]
    return json.loads((folder / "result.json").read_text())


def _table(markdown: str, header: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_tiny_report_matches_the_stage_outputs(tiny_run):
    config = CapstoneConfig.for_size("tiny")
    report = (tiny_run / "report.md").read_text()
    assert f"config hash: `{config.hash}`" in report
    for plot in ("loss.png", "grpo.png", "evals.png"):
        assert (tiny_run / plot).stat().st_size > 1000
    models = _table(report, "| model | perplexity | bits/byte | arithmetic accuracy | per seed | "
                            "multiple choice |")  # fmt: skip
    assert [row[0] for row in models] == [
        "pretrained", "SFT", "SFT + more SFT (GRPO's compute)", "SFT + GRPO"
    ]  # fmt: skip
    pretrained = _stage(tiny_run, "eval-pretrain")
    assert float(models[0][1]) == pytest.approx(pretrained["perplexity"], abs=0.006)
    assert float(models[0][2]) == pytest.approx(pretrained["bits_per_byte"], abs=6e-4)
    sft = _stage(tiny_run, "eval-sft")["arithmetic"]
    assert models[1][3] == f"{sft['accuracy']:.3f} ± {sft['accuracy_se']:.3f}"
    for row, method in ((models[2], "sft_more"), (models[3], "grpo")):
        per_seed = [_stage(tiny_run, f"eval-{method}-{s}")["arithmetic"]["accuracy"]
                    for s in config.rl_seeds]  # fmt: skip
        assert row[4] == " ".join(f"{a:.3f}" for a in per_seed)
        assert float(row[3].split(" ± ")[0]) == pytest.approx(
            sum(per_seed) / len(per_seed), abs=6e-4
        )
    header = "| stage | steps | tokens | tokens/s | wall s | energy Wh |"
    stages = {row[0]: row for row in _table(report, header)}
    assert set(stages) == {"pretrain", "sft", "grpo-0", "grpo-1", "sft_more-0", "sft_more-1"}
    for name, row in stages.items():
        result = _stage(tiny_run, name)
        assert int(row[1]) == result["steps"] and int(row[2]) == result["tokens"]
    assert int(stages["pretrain"][1]) == config.pretrain_steps
    assert int(stages["grpo-0"][1]) == config.rollouts  # one optimizer step per rollout here
    # Equal compute: more SFT's training FLOPs are GRPO's, up to one step and the difference in
    # mean example length between two draws of the mix.
    grpo, more = _stage(tiny_run, "grpo-0"), _stage(tiny_run, "sft_more-0")
    assert abs(more["flops"] - grpo["flops"]) <= more["flops"] / more["steps"] + 0.1 * grpo["flops"]
    summary = json.loads((tiny_run / "report.json").read_text())
    assert summary["n_params"] == _stage(tiny_run, "pretrain")["n_params"]
    assert f"**{summary['n_params']:,} parameters**" in report


@pytest.mark.slow
def test_second_run_is_served_from_the_cache(tiny_run, capsys):
    capsys.readouterr()
    weights = sorted((tiny_run / "stages").glob("*/model.safetensors"))
    before = {path: path.stat().st_mtime_ns for path in weights}
    assert main(["--size", "tiny", "--out", str(tiny_run), "--quiet"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if ": cached (" in line
             or ": running (" in line]  # fmt: skip
    assert lines and all(": cached (" in line for line in lines), lines
    assert {path: path.stat().st_mtime_ns for path in weights} == before


@pytest.mark.slow
def test_a_killed_stage_resumes_from_its_checkpoint(tiny_run, capsys):
    (folder,) = (tiny_run / "stages").glob("sft_more-0-*")
    from llmcourse.train.checkpoints import model_from_checkpoint

    before = model_from_checkpoint(folder / "model.safetensors").state_dict()
    (folder / "result.json").unlink()  # as if killed after the checkpoint, before the result
    assert main(["--size", "tiny", "--out", str(tiny_run), "--quiet"]) == 0
    assert "sft_more-0: running" in capsys.readouterr().out
    after = model_from_checkpoint(folder / "model.safetensors").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_the_final_model_chats_in_the_template(tiny_run):
    model, tokenizer = load_chat_model(tiny_run / "final")
    assert model.config.context_length == CapstoneConfig.for_size("tiny").context_length
    ids = torch.tensor([tokenizer.encode(render_chat([{"role": "user", "content": "3+4="}]))])
    assert model(ids).logits.shape == (1, ids.shape[1], tokenizer.vocab_size)
    with pytest.raises(FileNotFoundError, match="capstone model folder"):
        load_chat_model(tiny_run / "stages")


def test_an_interrupted_stage_writes_no_result(tmp_path):
    """The Trainer returns on SIGTERM/SIGINT: the stage must not be cached as done (the next run
    resumes it from its checkpoint instead of reading a half-trained model)."""
    from llmcourse.capstone.pipeline import Stages, _fit
    from llmcourse.train.trainer import TrainResult

    class Stopped:
        def fit(self) -> TrainResult:
            return TrainResult(3, None, None, 0, 0.0, 0.0, None, interrupted=True)

    stages = Stages(tmp_path, log=lambda _: None)
    config = CapstoneConfig.for_size("tiny")
    with pytest.raises(SystemExit, match="step 3"):
        stages.run("sft", "k", lambda folder: _fit(Stopped(), folder, config))
    assert not (tmp_path / "stages" / "sft-k" / "result.json").exists()
