"""Checkpoints that survive crashes: one safetensors file, written to a temp file and renamed.

A training state is a nested structure: ``{"model": state_dict, "optimizer": state_dict,
"step": 1200, "rng": {...}}``. ``save_checkpoint`` puts every tensor in the safetensors body
(named by its path, e.g. ``model/blocks.0.attn.qkv.weight``) and the rest of the structure as
JSON in the safetensors header, so one file holds everything and one ``os.replace`` publishes it.
A process killed mid-save leaves the previous checkpoint untouched and only a stale temp file,
which the next save removes.

Why not ``torch.save``? It pickles, and unpickling runs code: loading a checkpoint from the
internet with it is unsafe. Where a legacy ``torch.save`` file must be read, ``load_checkpoint``
uses ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers.
The format is read from the file's first bytes, never from its name, so ``save_checkpoint("x.pt")``
followed by ``load_checkpoint("x.pt")`` reads back what was written.

Loading refuses what would silently poison a run: every tensor's CRC-32 is stored in the header
and checked (a flipped byte on disk is caught), and every floating-point tensor must be finite (a
checkpoint saved after a divergence holds NaN). ``check=False`` skips both, e.g. to inspect a
diverged run.
"""

from __future__ import annotations

import json
import os
import re
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT = "llmcourse.checkpoint/1"
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"
_MARKERS = {_TENSOR, _TUPLE, _ITEMS}
_JSON_SCALARS = (str, int, float, bool, type(None))


def save_checkpoint(path: str | os.PathLike[str], state: Any) -> Path:
    """Atomically write ``state`` (nested dicts/lists/tuples of tensors and JSON values).

    Tensors that share storage (tied embeddings) are stored once and come back shared.
    Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[tuple[Any, ...], str] = {}
    skeleton = _flatten(state, "", tensors, seen)
    # Python's json writes NaN/Infinity (a loss can be NaN) and reads them back.
    checksums = {name: _crc32(tensor) for name, tensor in tensors.items()}
    header = {"format": FORMAT, "state": json.dumps(skeleton), "crc32": json.dumps(checksums)}
    _remove_stale_temps(path)
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    check: bool = True,
) -> Any:
    """Read what ``save_checkpoint`` wrote (or a ``torch.save`` file, with ``weights_only=True``).

    With ``check`` (the default) a tensor whose bytes no longer match the CRC-32 recorded at save
    time, or a floating-point tensor holding NaN or infinity, raises ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Check the path (and the run directory).")
    if not isinstance(check, bool):
        raise TypeError(f"check must be True or False, got {check!r}.")
    if _is_torch_file(path):
        state = torch.load(path, map_location=map_location, weights_only=True)
        if check:
            _check_finite(path, _named_tensors(state, ""))
        return state
    device = str(torch.device(map_location))
    try:
        with safe_open(str(path), framework="pt", device=device) as file:
            header = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors checkpoint ({error}). It may be truncated or "
            "not a checkpoint at all; load an earlier checkpoint or re-create this one."
        ) from error
    if check:
        _check_checksums(path, tensors, json.loads(header.get("crc32", "{}")))
        _check_finite(path, tensors.items())
    if header.get("format") != FORMAT:
        # A plain safetensors file (e.g. a Hugging Face model): hand back its tensors.
        return tensors
    return _unflatten(json.loads(header["state"]), tensors)


def _is_torch_file(path: Path) -> bool:
    """``torch.save`` writes a zip archive (``PK``), or a raw pickle (``0x80``) in old versions;
    a safetensors file starts with its header's length (8 bytes, little-endian) and then ``{``,
    which is tested first: that length's low byte may itself be ``0x80``."""
    with open(path, "rb") as handle:
        start = handle.read(9)
    if start[8:9] == b"{":
        return False
    return start[:2] == b"PK" or start[:1] == b"\x80"


def _crc32(tensor: torch.Tensor) -> int:
    if tensor.numel() == 0:
        return 0
    return zlib.crc32(tensor.reshape(-1).view(torch.uint8).numpy())


def _check_checksums(path: Path, tensors: dict[str, torch.Tensor], expected: dict) -> None:
    for name, crc in expected.items():
        if name in tensors and _crc32(tensors[name].cpu().contiguous()) != crc:
            raise ValueError(
                f"{path}: tensor {name!r} does not match the checksum written with it: the file "
                "was corrupted after it was saved. Load an earlier checkpoint (or pass "
                "check=False to read it anyway)."
            )


def _named_tensors(value: Any, name: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        return [(name, value)]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _named_tensors(v, _join(name, str(k)))]
    if isinstance(value, (list, tuple)):
        items = enumerate(value)
        return [item for i, v in items for item in _named_tensors(v, _join(name, str(i)))]
    return []


def _check_finite(path: Path, tensors: Any) -> None:
    for name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(
                f"{path}: tensor {name!r} holds {bad} NaN/infinite value(s) of {tensor.numel()}: "
                "the run had diverged when it was saved. Resume from an earlier checkpoint with a "
                "lower learning rate (or pass check=False to inspect it)."
            )


def _flatten(
    value: Any, name: str, tensors: dict[str, torch.Tensor], seen: dict[tuple[Any, ...], str]
) -> Any:
    if isinstance(value, torch.Tensor):
        return {_TENSOR: _store_tensor(value, name, tensors, seen)}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not _MARKERS & set(value):
            return {k: _flatten(v, _join(name, k), tensors, seen) for k, v in value.items()}
        if not all(isinstance(k, _JSON_SCALARS) for k in value):
            raise TypeError(f"Checkpoint dict keys must be str/int/float/bool/None (at {name!r}).")
        return {
            _ITEMS: [[k, _flatten(v, _join(name, str(k)), tensors, seen)] for k, v in value.items()]
        }
    if isinstance(value, (list, tuple)):
        items = [_flatten(v, _join(name, str(i)), tensors, seen) for i, v in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, _JSON_SCALARS):
        return value
    raise TypeError(
        f"Cannot store a {type(value).__name__} at {name!r} in a checkpoint: use tensors, numbers, "
        "strings, lists and dicts (convert NumPy arrays with torch.from_numpy)."
    )


def _store_tensor(
    tensor: torch.Tensor,
    name: str,
    tensors: dict[str, torch.Tensor],
    seen: dict[tuple[Any, ...], str],
) -> str:
    tensor = tensor.detach()
    if tensor.device.type != "meta" and tensor.numel():
        identity = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
            tensor.dtype,
        )
        if identity in seen:  # the very same view again: tied weights
            return seen[identity]
        seen[identity] = name
    # A partial view of shared storage is copied, so safetensors never sees overlapping tensors.
    tensors[name] = tensor.to("cpu").contiguous().clone()
    return name


def _unflatten(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    if isinstance(node, dict):
        if _TENSOR in node:
            return tensors[node[_TENSOR]]
        if _TUPLE in node:
            return tuple(_unflatten(v, tensors) for v in node[_TUPLE])
        if _ITEMS in node:
            return {k: _unflatten(v, tensors) for k, v in node[_ITEMS]}
        return {k: _unflatten(v, tensors) for k, v in node.items()}
    return node


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp)``, flush to disk, then rename over ``path`` in one step."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files left by writers that died mid-save (their process no longer exists)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(\d+)-[0-9a-f]{{8}}$")
    for candidate in path.parent.glob(f".{path.name}.tmp-*"):
        match = pattern.match(candidate.name)
        if match and not _process_alive(int(match.group(1))):
            candidate.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":
        return True  # no cheap check; leave the file rather than risk deleting a live write
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Everything needed to resume a run exactly: weights, optimizer moments, schedule, RNGs.

    ``extra`` holds JSON values such as the step and the data position. Save the result with
    ``save_checkpoint`` and give the loaded dict to ``restore_training_state``.
    """
    from llmcourse.utils.seed import rng_state

    state: dict[str, Any] = {"model": model.state_dict(), "rng": rng_state(), "extra": extra}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    return state


def restore_training_state(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> dict[str, Any]:
    """Load what ``training_state`` captured back into live objects; returns the ``extra`` dict."""
    from llmcourse.utils.seed import set_rng_state

    model.load_state_dict(state["model"])
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if name not in state:
            raise ValueError(f"This checkpoint holds no {name} state; pass {name}=None to skip it.")
        target.load_state_dict(state[name])
    set_rng_state(state["rng"])
    return dict(state.get("extra", {}))
