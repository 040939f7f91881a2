"""Presets, the CLI, metrics and the one-process tensor-parallel arithmetic."""

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.nn.feedforward import MLP, GatedMLP
from llmcourse.pretrained import shakespeare
from llmcourse.scaling import model_flops_utilization
from llmcourse.train import metrics
from llmcourse.train.cli import build_parser
from llmcourse.train.cli import main as train_main
from llmcourse.train.presets import PRESET_NAMES, char_datasets, get_preset, shakespeare_chars
from llmcourse.train.tensor_parallel import split_mlp


def test_presets_describe_the_course_model_and_nanogpts_baseline():
    ours, baseline = get_preset("shakespeare-char"), get_preset("nanogpt-cpu")
    assert set(PRESET_NAMES) == {"shakespeare-char", "nanogpt-cpu"}
    # nanoGPT's README CPU command: 4 layers, 4 heads, 128 wide, block 64, batch 12, 2000 iters.
    model, train = baseline.model, baseline.train
    assert (model.n_layer, model.n_head, model.d_model, model.context_length) == (4, 4, 128, 64)
    assert (train.batch_size, train.max_steps, train.lr, model.dropout) == (12, 2000, 1e-3, 0.0)
    assert ours.model.position == "rope" and ours.model.vocab_size == baseline.model.vocab_size
    with pytest.raises(ValueError, match="Did you mean 'nanogpt-cpu'"):
        get_preset("nanogpt_cpu")


def test_character_corpus_uses_the_course_split():
    corpus = shakespeare_chars()
    assert len(corpus.train_ids) == len(shakespeare("train"))
    assert corpus.tokenizer.decode(corpus.val_ids[:500].tolist()) == shakespeare("val")[:500]
    assert corpus.bytes_per_token == pytest.approx(1.0)  # the corpus is ASCII
    preset = get_preset("shakespeare-char")
    train, val = char_datasets(preset.model, preset.train, preset.eval_windows, world_size=2)
    assert len(train) == preset.train.max_steps * preset.train.batch_size * 2
    assert len(val) == preset.eval_windows
    assert train[0]["input_ids"].shape == (preset.model.context_length,)


def test_every_train_config_field_is_a_flag():
    args = vars(
        build_parser().parse_args(
            ["--lr", "0.01", "--betas", "0.8", "0.9", "--no-shuffle", "--grad-clip", "0.5"]
        )
    )
    assert args["lr"] == 0.01 and args["betas"] == [0.8, 0.9] and args["shuffle"] is False
    assert args["grad_clip"] == 0.5 and args["eval_batches"] is None


def test_cli_trains_and_reports(tmp_path, capsys):
    flags = ["--n-layer", "1", "--d-model", "32", "--context-length", "32", "--max-steps", "3"]
    result = train_main([*flags, "--global-batch-size", "4", "--out-dir", str(tmp_path)])
    assert result["step"] == 3 and result["global_batch"] == 4 and result["val_loss"] > 0
    assert (tmp_path / "checkpoint.safetensors").is_file() and (tmp_path / "log.jsonl").is_file()
    assert "RESULT {" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not divisible"):
        train_main([*flags, "--global-batch-size", "3", "--grad-accum-steps", "2"])
    with pytest.raises(SystemExit, match="--resume needs --out-dir"):
        train_main([*flags, "--resume"])


def test_flops_per_token_and_mfu():
    config = ModelConfig(vocab_size=84, context_length=64, d_model=128, n_layer=4, n_head=4)
    model = DecoderLM(config)
    per_token = metrics.model_training_flops_per_token(model, 64)
    non_embedding = model.num_parameters() - (84 + 64) * 128 + 84 * 128  # output layer counts
    assert per_token == 6 * non_embedding + 12 * 4 * 128 * 64
    assert metrics.mfu(1e4, per_token, 1, torch.device("cpu")) is None  # no peak for CPUs
    assert metrics.accelerator_key(torch.device("cpu")) is None
    expected = 1e6 * per_token / 989.4e12
    assert model_flops_utilization(1e6, per_token, 1, "h100") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA H200", "h200"),
        ("Tesla V100-SXM2-32GB", "v100"),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_gpu_names_map_to_datasheet_peaks(name, key):
    assert metrics.accelerator_for_name(name) == key


@pytest.mark.parametrize("kind", ["gelu", "swiglu"])
@pytest.mark.parametrize("shards", [1, 2, 4])
def test_column_then_row_split_equals_the_whole_mlp(kind, shards):
    torch.manual_seed(0)
    mlp = MLP(16, 64, "gelu", bias=True) if kind == "gelu" else GatedMLP(16, 48, "silu")
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(split_mlp(mlp, x, shards), mlp(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="does not split"):
        split_mlp(mlp, x, 5)
