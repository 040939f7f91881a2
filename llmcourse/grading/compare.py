"""Comparing a learner's output with the expected one: ``close`` and ``exact``.

A comparator is called as ``compare(got, expected, case)`` and raises :class:`Mismatch` (an
``AssertionError``) whose message is what the learner reads: where the outputs first differ,
the expected and the returned value there, and the shapes. It never shows code.

Structures are compared element by element (tuples, lists, dicts); numbers, arrays and tensors
are leaves. ``names`` labels the parts of a tuple the answer returns (``("output",
"weights")``), so that a message says "weights" instead of "[1]".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llmcourse.grading.wire import Opaque


class Mismatch(AssertionError):
    """The learner's output differs from the expected one; the message says where and how."""


def close(atol: float = 1e-5, rtol: float = 1e-4, names: Sequence[str] | None = None) -> Any:
    """Numbers, arrays and tensors within ``atol + rtol * |expected|``; the rest exactly.

    Float32 sums differ in their last bits between machines: keep tolerances at these defaults
    or looser, never exact float equality.
    """

    def compare(got: Any, expected: Any, case: Any = None) -> None:
        _compare(got, expected, "", _Tolerance(atol, rtol), tuple(names or ()))

    return compare


def exact(names: Sequence[str] | None = None) -> Any:
    """Equal values: ids, token lists, strings, integer codes (a list and a tuple are alike)."""

    def compare(got: Any, expected: Any, case: Any = None) -> None:
        _compare(got, expected, "", None, tuple(names or ()))

    return compare


class _Tolerance:
    def __init__(self, atol: float, rtol: float) -> None:
        self.atol, self.rtol = atol, rtol


def describe(value: Any) -> str:
    """A short name for what a value is: "a tensor of shape (2, 3)", "a list of 4 items"."""
    if isinstance(value, Opaque):
        return str(value)
    shape = _shape(value)
    if shape is not None:
        kind = "tensor" if _is_tensor(value) else "array"
        return f"a {kind} of shape {shape}"
    if isinstance(value, bool):
        return f"the bool {value}"
    if isinstance(value, (int, float)):
        return f"the number {_number(value)}"
    if isinstance(value, str):
        return f"the string {_quote(value)}"
    if value is None:
        return "None"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} items"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, Mapping):
        return f"a dict of {len(value)} items"
    return f"a {type(value).__name__}"


def _compare(
    got: Any, expected: Any, path: str, tolerance: _Tolerance | None, names: tuple
) -> None:
    where = f"{path}: " if path else ""
    if isinstance(got, Opaque):
        raise Mismatch(f"{where}expected {describe(expected)}, got {got} ({got.repr}).")
    if _is_leaf(expected):
        _compare_leaf(got, expected, where, tolerance)
        return
    if isinstance(expected, (str, bytes)) or expected is None:
        if got != expected or type(got) is not type(expected):
            raise Mismatch(f"{where}expected {describe(expected)}, got {describe(got)}.")
        return
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            raise Mismatch(f"{where}expected {describe(expected)}, got {describe(got)}.")
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {_few(missing)}")
            if extra:
                parts.append(f"unexpected keys {_few(extra)}")
            raise Mismatch(f"{where}{' and '.join(parts)} ({len(expected)} keys expected).")
        for key, value in expected.items():
            _compare(got[key], value, f"{path}[{key!r}]", tolerance, ())
        return
    if isinstance(expected, (set, frozenset)):
        if not isinstance(got, (set, frozenset)):
            raise Mismatch(f"{where}expected a set, got {describe(got)}.")
        if got != expected:
            missing, extra = sorted(expected - got, key=repr), sorted(got - expected, key=repr)
            raise Mismatch(f"{where}the sets differ: missing {_few(missing)}, extra {_few(extra)}.")
        return
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            what = _structure(expected, names)
            raise Mismatch(f"{where}expected {what}, got {describe(got)}.")
        if len(got) != len(expected):
            if tolerance is None and all(_is_scalar(v) for v in expected):
                _first_difference(got, expected, where)
            raise Mismatch(
                f"{where}expected {_structure(expected, names)}, got {len(got)} items instead."
            )
        if tolerance is None and all(_is_scalar(v) for v in expected):
            _first_difference(got, expected, where)
            return
        for index, (item, want) in enumerate(zip(got, expected, strict=True)):
            label = names[index] if not path and index < len(names) else f"{path}[{index}]"
            _compare(item, want, label, tolerance, ())
        return
    if got != expected:
        raise Mismatch(f"{where}expected {expected!r}, got {describe(got)}.")


def _compare_leaf(got: Any, expected: Any, where: str, tolerance: _Tolerance | None) -> None:
    import numpy as np

    want = _as_array(expected)
    have = _as_array(got)
    if have is None:
        raise Mismatch(f"{where}expected {describe(expected)}, got {describe(got)}.")
    if have.shape != want.shape:
        if want.ndim == 0 and have.size == 1:
            have = have.reshape(())
        else:
            raise Mismatch(
                f"{where}expected shape {_tuple(want.shape)}, got shape {_tuple(have.shape)}."
            )
    if tolerance is None:
        if have.dtype.kind in "fc" or want.dtype.kind in "fc":
            differs = ~((have == want) | (np.isnan(have) & np.isnan(want)))
        else:
            differs = have != want
    else:
        a, e = have.astype(np.float64), want.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isclose(a, e, atol=tolerance.atol, rtol=tolerance.rtol, equal_nan=True)
        differs = ~ok
    if not differs.any():
        return
    if want.ndim == 0:
        raise Mismatch(f"{where}expected {_number(want.item())}, got {_number(have.item())}.")
    first = tuple(int(i) for i in np.argwhere(differs)[0])
    message = (
        f"{where}values differ at index {_tuple(first)}: expected {_number(want[first].item())}, "
        f"got {_number(have[first].item())}"
    )
    count = int(differs.sum())
    if tolerance is not None:
        gaps = np.abs(have.astype(np.float64) - want.astype(np.float64))
        gaps = np.where(np.isnan(gaps), np.inf, gaps)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(gaps)), gaps.shape))
        message += f" (largest gap {float(gaps[worst]):.3g} at {_tuple(worst)}"
        message += f"; {count} of {differs.size} values differ; shape {_tuple(want.shape)})."
    else:
        message += f" ({count} of {differs.size} values differ; shape {_tuple(want.shape)})."
    raise Mismatch(message)


def _first_difference(got: Sequence[Any], expected: Sequence[Any], where: str) -> None:
    for index, (item, want) in enumerate(zip(got, expected, strict=False)):
        if not _scalars_equal(item, want):
            raise Mismatch(
                f"{where}first difference at position {index}: expected {want!r}, got "
                f"{item!r} (lengths: expected {len(expected)}, got {len(got)})."
            )
    if len(got) != len(expected):
        index = min(len(got), len(expected))
        longer = "expected" if len(expected) > len(got) else "got"
        raise Mismatch(
            f"{where}the first {index} items agree, then the {longer} sequence goes on "
            f"(lengths: expected {len(expected)}, got {len(got)})."
        )


def _scalars_equal(a: Any, b: Any) -> bool:
    if isinstance(b, float) and isinstance(a, (int, float)) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return False
    try:
        return bool(a == b) and (isinstance(a, str) == isinstance(b, str))
    except Exception:
        return False


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "shape")


def _is_leaf(value: Any) -> bool:
    if isinstance(value, bool) or (
        isinstance(value, (int, float)) and not isinstance(value, Opaque)
    ):
        return True
    return _shape(value) is not None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def _shape(value: Any) -> tuple[int, ...] | None:
    if _is_tensor(value) or type(value).__name__ == "ndarray":
        return tuple(int(n) for n in value.shape)
    return None


def _as_array(value: Any) -> Any:
    import numpy as np

    if _is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.dtype.is_floating_point and tensor.dtype not in (
            __import__("torch").float32,
            __import__("torch").float64,
        ):
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(value, (bool, int, float)):
        return np.asarray(value)
    if type(value).__name__ == "ndarray":
        return value if value.dtype.kind in "biufc" else None
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            return None
        return array if array.dtype.kind in "biufc" else None
    return None


def _structure(expected: Sequence[Any], names: tuple) -> str:
    kind = "a tuple" if isinstance(expected, tuple) else "a list"
    if names and len(names) == len(expected):
        return f"{kind} ({', '.join(names)})"
    return f"{kind} of {len(expected)} items"


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _tuple(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _quote(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:79] + "…")


def _few(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(item) for item in list(items)[:3])
    return f"[{shown}{', …' if len(items) > 3 else ''}]"
