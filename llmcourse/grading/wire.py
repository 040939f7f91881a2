"""The wire format between the grader and a notebook's kernel: JSON, tensors as raw bytes.

Inputs go to the kernel and outputs of the learner's code come back in this format, never as
pickles: unpickling runs code, and the kernel is the learner's. A value is plain JSON when it
is one (``None``, ``bool``, ``int``, finite ``float``, ``str``, a ``list``, a ``dict`` with
string keys); everything else is one object with a single ``$``-tag:

| Python value | encoded as |
|---|---|
| ``torch.Tensor`` | ``{"$tensor": {"dtype": "float32", "shape": [2, 3], "data": base64}}`` |
| ``numpy.ndarray`` | ``{"$ndarray": {...}}`` the same (object/str arrays: ``"list"``) |
| ``tuple``, ``set``, ``frozenset`` | ``{"$tuple": [...]}``, ``{"$set": [...]}`` |
| ``dict`` with other keys | ``{"$dict": [[key, value], ...]}`` |
| ``bytes`` | ``{"$bytes": base64}`` |
| nan, inf, -inf | ``{"$float": "nan"}`` (JSON has no such numbers) |
| ``torch.dtype`` | ``{"$dtype": "float16"}`` |
| a generator or other iterator | its items, as a list (drained by ``encode``) |
| :class:`Make` | ``{"$make": "module:qualname", "args": [...], "kwargs": {...}}`` |
| anything else | ``{"$object": "KVCache", "repr": "..."}`` (decodes to :class:`Opaque`) |

Tensor bytes are little-endian, C order, exactly as ``safetensors`` stores them; JSON carries
the structure (tuples, dicts, nesting) that a safetensors file cannot. Base64 costs a third
more bytes, which is nothing next to starting a kernel for inputs of at most a few MB.

``Make`` is how a large or rich input crosses: the recipe travels, and each side builds the
object itself (GloVe vectors, a tokenizer, a model config), cached per side.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 64  # nesting beyond this is refused (a self-referencing list, a hostile structure)
REPR_LIMIT = 200  # characters of repr kept for an object that has no wire form


class WireError(ValueError):
    """A value cannot be encoded, or a message is not valid wire data."""


@dataclass(frozen=True)
class Make:
    """An object both sides build from a recipe: ``Make("llmcourse.pretrained:glove", 20_000)``.

    ``target`` is ``"module:qualname"``; the arguments must themselves be wire values. Only the
    grader writes recipes, and only names of installed modules.
    """

    target: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, target: str, *args: Any, **kwargs: Any) -> None:
        if ":" not in target:
            raise WireError(f"Make needs 'module:qualname', got {target!r}.")
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)

    def __hash__(self) -> int:
        return hash(dumps(self))

    def __repr__(self) -> str:
        inner = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.target.split(':')[1]}({', '.join(inner)})"

    def build(self) -> Any:
        module, qualname = self.target.split(":")
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        return target(*self.args, **self.kwargs)


@dataclass(frozen=True)
class Opaque:
    """What came back for a value that has no wire form: its type name and a short repr."""

    type_name: str
    repr: str

    def __str__(self) -> str:
        return f"a {self.type_name} object"


class Builder:
    """Builds :class:`Make` recipes once per side and hands out the same object afterwards."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __call__(self, recipe: Make) -> Any:
        key = dumps(recipe)
        if key not in self._built:
            self._built[key] = recipe.build()
        return self._built[key]


def encode(value: Any, _depth: int = 0) -> Any:
    """``value`` as JSON-ready data (see the module docstring). Never pickles."""
    if _depth > MAX_DEPTH:
        raise WireError(f"values nested more than {MAX_DEPTH} deep cannot be sent")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # an int subclass (IntEnum, numpy's ints are not) becomes a plain int
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
    if isinstance(value, Make):
        return {
            "$make": value.target,
            "args": [encode(a, _depth + 1) for a in value.args],
            "kwargs": {k: encode(v, _depth + 1) for k, v in value.kwargs.items()},
        }
    torch = sys.modules.get("torch")
    numpy = sys.modules.get("numpy")
    if torch is not None:
        if isinstance(value, torch.Tensor):
            return {"$tensor": _tensor_payload(value, torch)}
        if isinstance(value, torch.dtype):
            return {"$dtype": str(value).removeprefix("torch.")}
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            return {"$ndarray": _array_payload(value, numpy)}
        if isinstance(value, numpy.generic):
            return encode(value.item(), _depth)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list):
        return [encode(item, _depth + 1) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(item, _depth + 1) for item in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": [encode(item, _depth + 1) for item in _sorted_if_possible(value)]}
    if isinstance(value, Mapping):
        items = list(value.items())
        if all(isinstance(k, str) and not k.startswith("$") for k, _ in items):
            return {k: encode(v, _depth + 1) for k, v in items}
        return {"$dict": [[encode(k, _depth + 1), encode(v, _depth + 1)] for k, v in items]}
    if isinstance(value, Iterator):
        return [encode(item, _depth + 1) for item in value]
    text = _safe_repr(value)
    return {"$object": type(value).__name__, "repr": text}


def decode(data: Any, build: Builder | None = None, _depth: int = 0) -> Any:
    """The Python value for wire ``data``; ``build`` turns :class:`Make` recipes into objects
    (without it they stay recipes, as the grader keeps them until it needs the object)."""
    if _depth > MAX_DEPTH:
        raise WireError("wire data nested too deep")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(item, build, _depth + 1) for item in data]
    if not isinstance(data, dict):
        raise WireError(f"not wire data: a {type(data).__name__}")
    if len(data) >= 1:
        tag = next(iter(data))
        if tag.startswith("$"):
            return _decode_tagged(tag, data, build, _depth)
    return {k: decode(v, build, _depth + 1) for k, v in data.items()}


def dumps(value: Any) -> str:
    """``value`` encoded and serialised to a JSON string."""
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes, build: Builder | None = None) -> Any:
    """The value serialised by :func:`dumps`."""
    return decode(json.loads(text), build)


def _decode_tagged(tag: str, data: dict[str, Any], build: Builder | None, depth: int) -> Any:
    body = data[tag]
    if tag == "$tensor":
        return _tensor_from(body)
    if tag == "$ndarray":
        return _array_from(body)
    if tag == "$tuple":
        return tuple(decode(item, build, depth + 1) for item in body)
    if tag == "$set":
        return {_hashable(decode(item, build, depth + 1)) for item in body}
    if tag == "$dict":
        return {
            _hashable(decode(k, build, depth + 1)): decode(v, build, depth + 1) for k, v in body
        }
    if tag == "$bytes":
        return base64.b64decode(body)
    if tag == "$float":
        if body not in ("nan", "inf", "-inf"):
            raise WireError(f"not a special float: {body!r}")
        return float(body)
    if tag == "$dtype":
        import torch

        dtype = getattr(torch, str(body), None)
        if not isinstance(dtype, torch.dtype):
            raise WireError(f"not a torch dtype: {body!r}")
        return dtype
    if tag == "$make":
        recipe = Make(
            str(body),
            *decode(data.get("args", []), build, depth + 1),
            **decode(data.get("kwargs", {}), build, depth + 1),
        )
        return build(recipe) if build is not None else recipe
    if tag == "$object":
        return Opaque(str(body), str(data.get("repr", ""))[:REPR_LIMIT])
    raise WireError(f"unknown wire tag {tag!r}")


# Tensors and arrays: dtype name, shape and raw little-endian bytes.
_NUMPY_FROM_TORCH = {
    "float64": "<f8",
    "float32": "<f4",
    "float16": "<f2",
    "int64": "<i8",
    "int32": "<i4",
    "int16": "<i2",
    "int8": "i1",
    "uint8": "u1",
    "bool": "?",
}


def _tensor_payload(tensor: Any, torch: Any) -> dict[str, Any]:
    tensor = tensor.detach()
    if tensor.layout != torch.strided or tensor.device.type == "meta":
        raise WireError(f"a {tensor.layout} tensor on {tensor.device} cannot be sent")
    tensor = tensor.cpu().contiguous()
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype == "bfloat16":  # no NumPy twin: send its 16-bit patterns
        raw = tensor.view(torch.int16).numpy().astype("<i2").tobytes()
    elif dtype in _NUMPY_FROM_TORCH:
        raw = tensor.numpy().astype(_NUMPY_FROM_TORCH[dtype], copy=False).tobytes()
    elif tensor.is_complex():
        raw = tensor.numpy().astype("<c16" if dtype == "complex128" else "<c8").tobytes()
    else:
        raise WireError(f"tensors of dtype {dtype} cannot be sent")
    return {
        "dtype": dtype,
        "shape": list(tensor.shape),
        "data": base64.b64encode(raw).decode("ascii"),
    }


def _tensor_from(body: dict[str, Any]) -> Any:
    import numpy as np
    import torch

    dtype, shape = str(body["dtype"]), [int(n) for n in body["shape"]]
    raw = base64.b64decode(body["data"])
    if dtype == "bfloat16":
        array = np.frombuffer(raw, dtype="<i2").astype(np.int16)
        return torch.from_numpy(array.copy()).view(torch.bfloat16).reshape(shape)
    numpy_dtype = _NUMPY_FROM_TORCH.get(dtype) or {"complex64": "<c8", "complex128": "<c16"}.get(
        dtype
    )
    if numpy_dtype is None:
        raise WireError(f"unknown tensor dtype {dtype!r}")
    array = np.frombuffer(raw, dtype=numpy_dtype)
    if array.size != math.prod(shape):
        raise WireError(f"a tensor of shape {shape} cannot hold {array.size} values")
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True)).reshape(shape)


def _array_payload(array: Any, numpy: Any) -> dict[str, Any]:
    if array.dtype.kind in "biufc":
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        return {
            "dtype": array.dtype.str.lstrip("<>|="),
            "shape": list(array.shape),
            "data": base64.b64encode(numpy.ascontiguousarray(little).tobytes()).decode("ascii"),
        }
    # Strings and objects: element by element (each element a wire value).
    return {"dtype": array.dtype.str, "shape": list(array.shape), "list": encode(array.tolist())}


def _array_from(body: dict[str, Any]) -> Any:
    import numpy as np

    shape = [int(n) for n in body["shape"]]
    if "list" in body:
        dtype = str(body["dtype"])
        values = decode(body["list"])
        if dtype.lstrip("<>|=").startswith(("U", "S")):
            return np.array(values, dtype=dtype).reshape(shape)
        result = np.empty(math.prod(shape), dtype=object)
        result[:] = _flatten(values, len(shape))
        return result.reshape(shape)
    dtype = np.dtype(str(body["dtype"]))
    if dtype.kind not in "biufc":
        raise WireError(f"unknown array dtype {body['dtype']!r}")
    little = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
    array = np.frombuffer(base64.b64decode(body["data"]), dtype=little)
    if array.size != math.prod(shape):
        raise WireError(f"an array of shape {shape} cannot hold {array.size} values")
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _flatten(values: Any, depth: int) -> list[Any]:
    if depth <= 1:
        return list(values) if depth == 1 else [values]
    return [item for row in values for item in _flatten(row, depth - 1)]


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _sorted_if_possible(values: Any) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a learner's __repr__ may raise anything
        text = f"<{type(value).__name__}>"
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 1] + "…"
