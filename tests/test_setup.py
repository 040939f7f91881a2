"""Set-up that tells the truth (issue 21, item 4): ``bootstrap.py --help``; ``llmcourse doctor``
checks that each cached asset exists *and loads* and names the command that fixes it; every slow
first-use step announces itself with its expected time."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from llmcourse import cli, doctor, pretrained
from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.train import rlvr, tiny_gpt
from llmcourse.utils.checkpoint import save_checkpoint
from llmcourse.utils.logging import get_logger

BOOTSTRAP = Path(__file__).resolve().parents[1] / "tools" / "bootstrap.py"


def test_bootstrap_help_lists_commands_steps_and_settings():
    result = subprocess.run(
        [sys.executable, str(BOOTSTRAP), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for text in ("setup", "lab", "test", "Set-up, in order", "LLMCOURSE_TORCH_INDEX_URL"):
        assert text in result.stdout, text
    result = subprocess.run(
        [sys.executable, str(BOOTSTRAP), "--frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "unrecognized arguments: --frobnicate" in result.stderr
    result = subprocess.run(
        [sys.executable, str(BOOTSTRAP), "tset"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "invalid choice: 'tset'" in result.stderr


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    return tmp_path


def test_doctor_with_an_empty_cache_says_what_to_build(empty_cache, capsys):
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    for name in ("smollm2 (safetensors)", "tiny GPT (pretrained)", "arithmetic GPT (SFT)"):
        assert f"MISSING {name}" in out, out
    assert "not built yet (about a minute to build)" in out
    assert "To fix:\n  llmcourse data   (builds what is missing)" in out
    assert "ok      shakespeare" in out  # the packages themselves are fine


def test_doctor_reports_assets_that_exist_but_do_not_load(empty_cache, capsys):
    (pretrained.smollm2_cache_dir() / "config.json").parent.mkdir(parents=True)
    (pretrained.smollm2_cache_dir() / "config.json").write_text("{}")
    garbage = tiny_gpt.cache_folder()
    garbage.mkdir(parents=True)
    (garbage / "model.safetensors").write_bytes(b"\x00" * 64)
    (garbage / "history.json").write_text('{"history": [], "val_loss": 1.0}')
    config = ModelConfig(vocab_size=11, context_length=8, d_model=8, n_layer=1, n_head=2)
    state = DecoderLM(config).state_dict()
    state["embed_tokens.weight"][0, 0] = float("nan")
    extra = {"model_class": "DecoderLM", "model_config": config.to_dict()}
    save_checkpoint(rlvr.sft_cache_folder() / "model.safetensors", {"model": state, "extra": extra})
    (rlvr.sft_cache_folder() / "history.json").write_text('{"history": []}')

    assert cli.main(["doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    smollm2 = next(line for line in lines if "smollm2 (safetensors)" in line)
    assert (
        "BROKEN" in smollm2 and "incomplete: model.safetensors, tokenizer.json missing" in smollm2
    )
    tiny = next(line for line in lines if "tiny GPT (pretrained)" in line)
    assert "BROKEN" in tiny and "does not load (ValueError" in tiny
    arithmetic = next(line for line in lines if "arithmetic GPT (SFT)" in line)
    assert "BROKEN" in arithmetic and "NaN" in arithmetic
    assert any(line.strip().startswith("llmcourse data --rebuild") for line in lines)
    removed = doctor.remove_cached_assets()
    assert set(removed) == {
        pretrained.smollm2_cache_dir(),
        tiny_gpt.cache_folder(),
        rlvr.sft_cache_folder(),
    }
    assert all(not folder.exists() for folder in removed)
    assert (
        "--rebuild"
        in subprocess.run(
            [sys.executable, "-m", "llmcourse.cli", "data", "--help"],
            capture_output=True,
            text=True,
        ).stdout
    )


class Stop(Exception):
    """Raised by a stand-in for the slow work, once its notice has been given."""


@pytest.fixture
def notices():
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = get_logger()  # set up as in real use, before the test's handler joins it
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def stop(*args, **kwargs):
    raise Stop


@pytest.mark.parametrize(
    ("target", "name", "call", "expected"),
    [
        (tiny_gpt, "_train", tiny_gpt.pretrained_tiny_gpt, "Pretraining the course's tiny GPT"),
        (rlvr, "sft_start", rlvr.cached_sft_start, "Teaching the arithmetic GPT to add"),
        (pretrained, "_convert_smollm2", pretrained.smollm2_dir, "Converting SmolLM2-135M"),
    ],
    ids=["tiny-gpt", "arithmetic-sft", "smollm2"],
)
def test_slow_first_use_steps_announce_their_expected_time(
    empty_cache, notices, monkeypatch, target, name, call, expected
):
    monkeypatch.setattr(target, name, stop)
    with pytest.raises(Stop):
        call()
    assert len(notices) == 1 and notices[0].startswith(expected), notices
    assert "once, about" in notices[0] or "(once; about" in notices[0]


def test_data_names_the_rebuild_when_a_cached_asset_is_broken(empty_cache, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "prepare", lambda: None)  # SmolLM2's conversion: not here
    folder = tiny_gpt.cache_folder()
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    (folder / "history.json").write_text('{"history": [], "val_loss": 1.0}')
    assert cli.main(["data"]) == 1
    err = capsys.readouterr().err
    assert "a cached asset does not load" in err and "llmcourse data --rebuild" in err
