"""The zoo's configs reproduce published parameter counts; names and cards are complete."""

import pytest
import torch
import transformers as tf

from llmcourse.models import DecoderLM, EncoderLM, Seq2SeqLM, zoo
from llmcourse.models.counting import count_parameters
from llmcourse.models.hf import hf_config

DESIGN_NAMES = [
    "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-175b", "bert-base", "bert-large",
    "t5-base", "llama-7b", "llama-13b", "llama-33b", "llama-65b", "llama-2-7b", "llama-2-13b",
    "llama-2-70b", "llama-3-8b", "mistral-7b", "mixtral-8x7b", "palm-540b", "jais-13b",
    "jais-30b", "smollm2-135m",
]  # fmt: skip

# Exact counts of the released architectures. Sources: the numel of the released checkpoints
# as listed by their model pages / config files (GPT-2: openai-community; BERT: google-bert
# BertForMaskedLM; T5: google-t5/t5-base; LLaMA: meta-llama; Mistral/Mixtral: mistralai;
# SmolLM2: HuggingFaceTB, also the course's own weight file).
EXACT = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "bert-base": 109_514_298,  # BertForMaskedLM (no pooler); "110M" in Devlin et al. 2019
    "t5-base": 222_903_552,  # "220M" in Raffel et al. 2020
    "llama-7b": 6_738_415_616,
    "llama-13b": 13_015_864_320,
    "llama-33b": 32_528_943_616,
    "llama-65b": 65_285_660_672,
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "smollm2-135m": 134_515_008,
}

# Rounded figures printed in the papers, and how they were rounded.
PAPER_FIGURES = {
    # LLaMA paper Table 2: 6.7B, 13.0B, 32.5B, 65.2B (one decimal, truncated: 65.29 -> 65.2).
    "llama-7b": (6.7e9, 0.1e9),
    "llama-13b": (13.0e9, 0.1e9),
    "llama-33b": (32.5e9, 0.1e9),
    "llama-65b": (65.2e9, 0.1e9),
    # PaLM Table 1: 540.35B (two decimals, truncated: 540.356 -> 540.35).
    "palm-540b": (540.35e9, 0.01e9),
    # GPT-3 Table 2.1 prints 175.0B; the architecture it lists gives 174.6B.
    "gpt3-175b": (175.0e9, 0.5e9),
    # Mixtral: "46.7B total, 12.9B active" (Mistral AI release; paper: 47B / 13B).
    "mixtral-8x7b": (46.7e9, 0.05e9),
    # Jais-13b: "13B" (Sengupta et al. 2023); Jais-30b: "30B".
    "jais-13b": (13e9, 0.5e9),
    "jais-30b": (30e9, 0.5e9),
    # BERT: 110M and 340M (Devlin et al. 2019, §3).
    "bert-base": (110e6, 1e6),
    "bert-large": (340e6, 5e6),
}

CLASSES = {"decoder": DecoderLM, "encoder": EncoderLM, "encoder-decoder": Seq2SeqLM}


def test_every_design_name_is_there_and_nothing_else():
    assert sorted(zoo.names()) == sorted(DESIGN_NAMES)


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_count_equals_numel_of_the_model_built_on_meta(name):
    config = zoo.get_config(name)
    with torch.device("meta"):
        model = CLASSES[config.architecture](config)
    assert count_parameters(config) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_published_counts(name):
    assert count_parameters(zoo.get_config(name)) == EXACT[name]


@pytest.mark.parametrize("name", sorted(PAPER_FIGURES))
def test_rounded_paper_figures(name):
    figure, tolerance = PAPER_FIGURES[name]
    assert abs(count_parameters(zoo.get_config(name)) - figure) <= tolerance


def test_mixtral_active_parameters():
    assert count_parameters(zoo.get_config("mixtral-8x7b"), active=True) == pytest.approx(
        12.9e9, abs=0.05e9
    )
    assert zoo.published_active_parameters("mixtral-8x7b") == 12.9e9


@pytest.mark.parametrize(
    "name", ["gpt2", "gpt2-xl", "bert-base", "t5-base", "llama-2-70b", "mistral-7b", "llama-3-8b"]
)
def test_transformers_builds_the_same_count_from_our_config(name):
    """An independent count: transformers' own model class, built on the meta device."""
    config = zoo.get_config(name)
    cls = {
        "gpt2": tf.GPT2LMHeadModel,
        "gpt2-xl": tf.GPT2LMHeadModel,
        "bert-base": tf.BertForMaskedLM,
        "t5-base": tf.T5ForConditionalGeneration,
        "mistral-7b": tf.MistralForCausalLM,
    }.get(name, tf.LlamaForCausalLM)
    with torch.device("meta"):
        model = cls(hf_config(config))
    assert sum(p.numel() for p in model.parameters()) == count_parameters(config)


@pytest.mark.slow  # converts SmolLM2 from its GGUF on first use
def test_smollm2_matches_its_real_weight_file():
    from safetensors import safe_open

    from llmcourse.pretrained import smollm2_dir

    with safe_open(str(smollm2_dir() / "model.safetensors"), "pt") as file:
        names = list(file.keys())
        total = sum(torch.Size(file.get_slice(name).get_shape()).numel() for name in names)
    assert total == count_parameters(zoo.get_config("smollm2-135m"))


def test_cards_have_the_facts_later_lessons_need():
    for name in DESIGN_NAMES:
        card = zoo.get_card(name)
        assert 2017 < card.year < 2026 and card.paper and card.config_source
        assert card.published_parameters > 0 and card.context_length > 0
    assert zoo.get_card("llama-2-7b").training_tokens == 2.0e12
    assert zoo.get_card("gpt3-175b").open_weights is False
    assert zoo.get_card("palm-540b").training_tokens == 780e9


def test_names_are_in_time_order():
    years = [zoo.get_card(n).year for n in zoo.names()]
    assert years == sorted(years)


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ValueError, match="Did you mean 'llama-2-7b'"):
        zoo.get_config("llama2-7b")
    with pytest.raises(ValueError, match="Known names"):
        zoo.get_card("gpt-5")
