"""Byte-level BPE vocabularies in the files other libraries use: GPT-2, tiktoken, Hugging Face.

- GPT-2 (OpenAI's ``encoder.py``): ``encoder.json`` maps each token to its id, ``vocab.bpe``
  lists the merges, one ``first second`` per line in priority order (``transformers`` calls the
  same files ``vocab.json`` and ``merges.txt``): ``load_gpt2_files``, ``save_gpt2_files``.
- tiktoken: a ``.tiktoken`` file has one ``base64(token) rank`` per line: ``load_tiktoken``,
  ``save_tiktoken`` (``from_tiktoken_ranks`` for ranks already in memory).
- Hugging Face ``tokenizers``: ``tokenizer.json`` holds vocab, merges, pre-tokenizer and added
  tokens: ``load_hf_tokenizer``, ``save_hf_tokenizer``.

Each reader returns a ``BPETokenizer`` built by ``BPETokenizer.from_vocab_merges``, so they all
encode with the same merge loop. The text formats spell a token's bytes with GPT-2's printable
stand-ins (``bytes_to_unicode``: ``b" the"`` is ``"Ġthe"``). A tiktoken file has no merge
list: tiktoken merges whichever adjacent pair forms the lowest-ranked token, and
``merges_from_ranks`` recovers the list that does the same. Neither GPT-2's nor tiktoken's files
hold the pre-tokenisation regex or the special tokens; pass them (GPT-2's are the defaults).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from llmcourse.tokenizers.base import write_text_atomically
from llmcourse.tokenizers.bpe import GPT2_PRINTABLE_BYTES, GPT2_SPLIT_PATTERN, BPETokenizer

__all__ = [
    "bytes_to_unicode",
    "from_tiktoken_ranks",
    "load_gpt2_files",
    "load_hf_tokenizer",
    "load_tiktoken",
    "merges_from_ranks",
    "save_gpt2_files",
    "save_hf_tokenizer",
    "save_tiktoken",
    "token_from_text",
    "token_to_text",
]

PathLike = str | os.PathLike[str]
Specials = Sequence[str] | Mapping[str, int]

#: ``Sequence[Digits(individual_digits=True), ByteLevel]`` (SmolLM2, StarCoder) as one regex:
#: GPT-2's, with every digit on its own and whitespace before a digit ending its run.
GPT2_SINGLE_DIGITS_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte value (its ``encoder.py``).

    Files that store byte-level tokens as text (GPT-2's ``encoder.json`` and ``vocab.bpe``,
    Hugging Face's ``tokenizer.json``) spell each byte as one visible character: the printable
    bytes (``bpe.GPT2_PRINTABLE_BYTES``) as themselves, the other 68 (controls, space, soft
    hyphen) as U+0100 onwards in byte order, so a space is ``Ġ`` and a newline ``Ċ``.
    """
    return dict(_stand_ins())


@cache
def _stand_ins() -> dict[int, str]:
    table = {b: chr(b) for b in GPT2_PRINTABLE_BYTES}
    others = (b for b in range(256) if b not in table)
    return table | {b: chr(256 + i) for i, b in enumerate(others)}


@cache
def _from_stand_ins() -> dict[str, int]:
    return {char: byte for byte, char in _stand_ins().items()}


def token_to_text(token: bytes) -> str:
    """``token`` spelled with GPT-2's stand-in characters: ``b" the" -> "Ġthe"``."""
    # Latin-1 turns each byte into the character with the same number; translate swaps in the
    # stand-in (a dict keyed by those numbers serves as the table).
    return token.decode("latin-1").translate(_stand_ins())


def token_from_text(text: str) -> bytes:
    """The bytes a stand-in spelling stands for: ``"Ġthe" -> b" the"`` (inverse of
    ``token_to_text``)."""
    table = _from_stand_ins()
    try:
        return bytes(table[char] for char in text)
    except KeyError as error:
        raise ValueError(
            f"{text!r} is not a byte-level token: {error.args[0]!r} is none of GPT-2's 256 "
            "stand-in characters (is this a byte-level BPE file?)."
        ) from None


def _ordinary_tokens(tokenizer: BPETokenizer) -> dict[int, bytes]:
    """``{id: bytes}`` of the tokens that are neither special nor unused."""
    tokenizer._require_trained()
    specials = set(tokenizer.special_tokens.values())
    return {
        i: token
        for i, token in enumerate(tokenizer.vocab)
        if token is not None and i not in specials
    }


def _merge_list(tokenizer: BPETokenizer) -> list[tuple[bytes, bytes]]:
    vocab = tokenizer.vocab
    return [(vocab[first], vocab[second]) for first, second in tokenizer.merges]


# ---------------------------------------------------------------------------------------------
# GPT-2: encoder.json + vocab.bpe
# ---------------------------------------------------------------------------------------------


def load_gpt2_files(
    encoder_json: PathLike,
    vocab_bpe: PathLike,
    special_tokens: Specials = ("<|endoftext|>",),
    *,
    pattern: str = GPT2_SPLIT_PATTERN,
    eos_token: str | None = "<|endoftext|>",
) -> BPETokenizer:
    """Read GPT-2's ``encoder.json`` (``{token: id}``) and ``vocab.bpe`` (the merges).

    Entries of ``encoder.json`` named in ``special_tokens`` are special (GPT-2's file lists
    ``<|endoftext|>`` like any token); names it lacks get the next free ids.
    """
    encoder = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    if not isinstance(encoder, dict):
        raise ValueError(f"{encoder_json} is not a GPT-2 encoder.json ({{token: id}}).")
    names = list(special_tokens)
    specials = {name: encoder.pop(name) for name in names if name in encoder}
    vocab = {token_id: token_from_text(text) for text, token_id in encoder.items()}
    next_id = 1 + max([*vocab, *specials.values()], default=-1)
    for name in names:
        if name not in specials:
            specials[name], next_id = next_id, next_id + 1
    if isinstance(special_tokens, Mapping):
        specials = dict(special_tokens)
    merges = []
    lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, 1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{vocab_bpe}:{number}: expected 'first second', got {line!r}.")
        merges.append((token_from_text(parts[0]), token_from_text(parts[1])))
    return BPETokenizer.from_vocab_merges(
        vocab, merges, specials, pattern=pattern, eos_token=eos_token
    )


def save_gpt2_files(
    tokenizer: BPETokenizer, encoder_json: PathLike, vocab_bpe: PathLike
) -> tuple[Path, Path]:
    """Write ``tokenizer`` as GPT-2's ``encoder.json`` and ``vocab.bpe`` (the pattern is not
    part of these files: pass it to ``load_gpt2_files`` if it is not GPT-2's)."""
    encoder = {token_to_text(token): i for i, token in _ordinary_tokens(tokenizer).items()}
    encoder.update(tokenizer.special_tokens)
    encoder = dict(sorted(encoder.items(), key=lambda item: item[1]))
    lines = ["#version: 0.2"]
    lines += [f"{token_to_text(a)} {token_to_text(b)}" for a, b in _merge_list(tokenizer)]
    return (
        write_text_atomically(encoder_json, json.dumps(encoder, ensure_ascii=False)),
        write_text_atomically(vocab_bpe, "\n".join(lines) + "\n"),
    )


# ---------------------------------------------------------------------------------------------
# tiktoken: ranks
# ---------------------------------------------------------------------------------------------


def merges_from_ranks(ranks: Mapping[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge list, in rank order, that encodes like tiktoken's ``{token bytes: rank}``.

    tiktoken merges the adjacent pair whose concatenation has the lowest rank. So a token's
    pair is what that rule makes of its bytes using only lower-ranked tokens, which must leave
    exactly two pieces.
    """
    if len(set(ranks.values())) != len(ranks):
        raise ValueError("ranks must be distinct: two tokens share a rank.")
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                joined_rank = ranks.get(parts[i] + parts[i + 1])
                if (
                    joined_rank is not None
                    and joined_rank < rank
                    and (best is None or joined_rank < best[0])
                ):
                    best = (joined_rank, i)
            if best is None:
                break
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
        elif len(parts) > 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not the merge of two earlier ones.")
    return merges


def from_tiktoken_ranks(
    ranks: Mapping[bytes, int],
    special_tokens: Specials = (),
    *,
    pattern: str = GPT2_SPLIT_PATTERN,
    eos_token: str | None = "<|endoftext|>",
) -> BPETokenizer:
    """A tokenizer from tiktoken's ``mergeable_ranks`` (ids are the ranks)."""
    vocab = {rank: token for token, rank in ranks.items()}
    return BPETokenizer.from_vocab_merges(
        vocab, merges_from_ranks(ranks), special_tokens, pattern=pattern, eos_token=eos_token
    )


def load_tiktoken(
    path: PathLike,
    special_tokens: Specials = (),
    *,
    pattern: str = GPT2_SPLIT_PATTERN,
    eos_token: str | None = "<|endoftext|>",
) -> BPETokenizer:
    """Read a ``.tiktoken`` file. Give its ``pattern`` and ``special_tokens`` (``{name: id}``)
    as tiktoken's ``Encoding`` needs them too; GPT-2's are ``GPT2_SPLIT_PATTERN`` and
    ``{"<|endoftext|>": 50256}``."""
    ranks: dict[bytes, int] = {}
    text = Path(path).read_text(encoding="ascii")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise ValueError(
                f"{path}:{number}: expected 'base64-token rank', got {line!r}."
            ) from None
    return from_tiktoken_ranks(ranks, special_tokens, pattern=pattern, eos_token=eos_token)


def save_tiktoken(tokenizer: BPETokenizer, path: PathLike) -> Path:
    """Write the ordinary tokens as a ``.tiktoken`` file (rank = id).

    Only a vocabulary whose ids follow its merge order can be written this way, since tiktoken
    merges by rank; the check recovers the merges from the ranks and compares.
    """
    tokens = _ordinary_tokens(tokenizer)
    ranks = {token: i for i, token in tokens.items()}
    try:
        same = merges_from_ranks(ranks) == _merge_list(tokenizer)
        differ = None if same else "the ranks would imply other merges"
    except ValueError as error:
        differ = str(error)
    if differ:
        raise ValueError(
            "This vocabulary cannot be written as tiktoken ranks: tiktoken merges by the rank "
            "of the merged token, so the ids must follow the merge order, one merge per token "
            f"({differ}). Write it with save_hf_tokenizer or save_gpt2_files instead."
        )
    lines = [f"{base64.b64encode(token).decode('ascii')} {i}" for i, token in tokens.items()]
    return write_text_atomically(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json
# ---------------------------------------------------------------------------------------------

_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}


def _pattern_from_hf(pre_tokenizer: Any, path: PathLike) -> str:
    """The regex that cuts text as ``pre_tokenizer`` does, for the byte-level set-ups in use."""
    pre_tokenizer = pre_tokenizer or {}
    is_sequence = pre_tokenizer.get("type") == "Sequence"
    steps = pre_tokenizer.get("pretokenizers", []) if is_sequence else [pre_tokenizer]
    kinds = [step.get("type") for step in steps]
    byte_level = steps[-1] if steps else {}
    # ByteLevel's defaults (add_prefix_space and use_regex) are both true.
    if kinds and kinds[-1] == "ByteLevel" and not byte_level.get("add_prefix_space", True):
        use_regex = byte_level.get("use_regex", True)
        if kinds == ["ByteLevel"] and use_regex:
            return GPT2_SPLIT_PATTERN
        if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and use_regex:
            return GPT2_SINGLE_DIGITS_PATTERN
        if kinds == ["Split", "ByteLevel"] and not use_regex:
            split = steps[0]
            regex_pattern = (split.get("pattern") or {}).get("Regex")
            if regex_pattern and split.get("behavior") == "Isolated" and not split.get("invert"):
                return regex_pattern
    raise ValueError(
        f"{path}: unsupported pre-tokenizer {json.dumps(pre_tokenizer)[:300]}. Readable (all with "
        "add_prefix_space=false): ByteLevel (GPT-2's regex), Sequence[Split(Regex, 'Isolated'), "
        "ByteLevel(use_regex=false)] (LLaMA 3, Qwen) and Sequence[Digits(individual_digits=true), "
        "ByteLevel] (SmolLM2)."
    )


def load_hf_tokenizer(path: PathLike, *, eos_token: str | None = "<|endoftext|>") -> BPETokenizer:
    """Read a Hugging Face ``tokenizer.json`` holding a byte-level BPE (GPT-2, SmolLM2, LLaMA 3,
    Qwen, ...). Every added token becomes a special token of ours (matched before
    pre-tokenisation, never merged, as ``tokenizers`` treats added tokens). A post-processor
    template (adding a BOS token, say) is not applied: ``encode`` gives the ids of the text, as
    ``tokenizer.encode(text, add_special_tokens=False)`` does."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        model = document["model"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a Hugging Face tokenizer.json ({error!r}).") from None
    if model.get("type") != "BPE":
        raise ValueError(f"{path} holds a {model.get('type')!r} model; only BPE can be read.")
    unsupported = {
        key: model.get(key)
        for key, default in (
            ("dropout", None),
            ("unk_token", None),
            ("continuing_subword_prefix", ""),
            ("end_of_word_suffix", ""),
            ("byte_fallback", False),
            ("ignore_merges", False),
        )
        if model.get(key) not in (default, None)
    }
    if unsupported or document.get("normalizer") is not None:
        raise ValueError(
            f"{path} uses BPE options this reader does not implement: "
            f"{unsupported or {'normalizer': document.get('normalizer')}}."
        )
    decoder = document.get("decoder")
    if decoder is not None and decoder.get("type") != "ByteLevel":
        raise ValueError(f"{path} has a {decoder.get('type')!r} decoder, not a byte-level one.")
    pattern = _pattern_from_hf(document.get("pre_tokenizer"), path)
    specials: dict[str, int] = {}
    for added in document.get("added_tokens") or []:
        if added.get("lstrip") or added.get("rstrip") or added.get("single_word"):
            raise ValueError(
                f"{path}: added token {added.get('content')!r} uses lstrip/rstrip/single_word, "
                "which this reader does not implement."
            )
        specials[added["content"]] = added["id"]
    vocab = {
        token_id: token_from_text(text)
        for text, token_id in model["vocab"].items()
        if specials.get(text) != token_id
    }
    merges = [
        tuple(token_from_text(part) for part in (m.split(" ") if isinstance(m, str) else m))
        for m in model["merges"]
    ]
    return BPETokenizer.from_vocab_merges(
        vocab, merges, specials, pattern=pattern, eos_token=eos_token
    )


def save_hf_tokenizer(tokenizer: BPETokenizer, path: PathLike) -> Path:
    """Write ``tokenizer`` as a ``tokenizer.json`` that ``tokenizers.Tokenizer.from_file`` (and
    ``transformers.PreTrainedTokenizerFast(tokenizer_file=...)``) read."""
    if tokenizer.pattern == GPT2_SPLIT_PATTERN:
        pre_tokenizer: dict[str, Any] = {**_BYTE_LEVEL, "use_regex": True}
    else:
        split = {
            "type": "Split",
            "pattern": {"Regex": tokenizer.pattern},
            "behavior": "Isolated",
            "invert": False,
        }
        pre_tokenizer = {
            "type": "Sequence",
            "pretokenizers": [split, {**_BYTE_LEVEL, "use_regex": False}],
        }
    document = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": token_id,
                "content": name,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for name, token_id in sorted(tokenizer.special_tokens.items(), key=lambda x: x[1])
        ],
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": None,
        "decoder": {**_BYTE_LEVEL, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {token_to_text(token): i for i, token in _ordinary_tokens(tokenizer).items()},
            "merges": [f"{token_to_text(a)} {token_to_text(b)}" for a, b in _merge_list(tokenizer)],
        },
    }
    return write_text_atomically(path, json.dumps(document, ensure_ascii=False, indent=1))
