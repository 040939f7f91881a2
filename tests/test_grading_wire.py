"""The wire format: every value a test sends or an answer returns survives the trip as data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmcourse.grading import wire
from llmcourse.grading.wire import Builder, Make, Opaque, WireError


def round_trip(value):
    return wire.loads(json.loads(json.dumps(wire.dumps(value))))


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int64,
     torch.uint8, torch.bool, torch.int16, torch.int32, torch.complex64],
)  # fmt: skip
def test_tensors_keep_dtype_shape_and_bits(dtype):
    tensor = (torch.randn(3, 4, 2) * 50).to(dtype)
    back = round_trip(tensor)
    assert back.dtype == dtype and back.shape == tensor.shape
    assert torch.equal(
        back.view(torch.uint8) if dtype.is_floating_point else back,
        tensor.view(torch.uint8) if dtype.is_floating_point else tensor,
    )


def test_tensors_that_are_views_grads_or_scalars():
    base = torch.randn(4, 6, requires_grad=True)
    for tensor in (base, base.T, base[::2, 1:], torch.tensor(3.5), torch.empty(0, 3)):
        back = round_trip(tensor)
        assert torch.equal(back, tensor.detach()) and not back.requires_grad


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i8", "u8", "?", "i1", "<c16", "<U5"])
def test_arrays_keep_dtype_and_values(dtype):
    array = (np.arange(12).reshape(3, 4) * 3).astype(dtype)
    back = round_trip(array)
    assert back.dtype == array.dtype.newbyteorder("=") and np.array_equal(back, array)


def test_structures_and_special_values():
    value = {
        "tuple": (1, 2.5, "x"),
        "list": [None, True, [1, [2]]],
        "pairs": {(1, 2): 3, (0, 0): -1},
        "set": {3, 1, 2},
        "bytes": b"\x00\xff",
        "floats": [math.inf, -math.inf],
        "dtype": torch.float16,
        "$looks like a tag": 1,
        "numpy scalar": np.float32(1.5),
    }
    back = round_trip(value)
    assert back["tuple"] == (1, 2.5, "x") and back["pairs"] == {(1, 2): 3, (0, 0): -1}
    assert back["set"] == {1, 2, 3} and back["bytes"] == b"\x00\xff"
    assert back["floats"] == [math.inf, -math.inf] and back["dtype"] is torch.float16
    assert back["$looks like a tag"] == 1 and back["numpy scalar"] == 1.5
    assert math.isnan(round_trip(math.nan))


def test_generators_are_drained_and_objects_become_opaque():
    assert round_trip(i * i for i in range(4)) == [0, 1, 4, 9]

    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    back = round_trip([Hostile(), object()])
    assert all(isinstance(item, Opaque) for item in back)
    assert back[0].type_name == "Hostile" and back[0].repr == "<Hostile>"


def test_refuses_what_it_cannot_carry():
    deep: list = []
    deep.append(deep)  # a list that contains itself
    with pytest.raises(WireError, match="nested"):
        wire.dumps(deep)
    with pytest.raises(WireError, match="unknown wire tag"):
        wire.decode({"$pickle": "gASV"})
    with pytest.raises(WireError, match="cannot hold"):
        wire.decode({"$tensor": {"dtype": "float32", "shape": [5], "data": "AAAAAA=="}})
    with pytest.raises(WireError):
        wire.decode({"$dtype": "not_a_dtype"})


def test_recipes_travel_as_recipes_and_are_built_once_per_side():
    recipe = Make("collections:OrderedDict", [("a", 1)])
    data = json.loads(wire.dumps([recipe, recipe]))
    assert data[0] == {
        "$make": "collections:OrderedDict",
        "args": [[{"$tuple": ["a", 1]}]],
        "kwargs": {},
    }
    assert wire.decode(data) == [recipe, recipe]  # the grader keeps recipes until it needs them
    build = Builder()
    first, second = wire.decode(data, build)
    assert first == {"a": 1} and first is second
    with pytest.raises(WireError, match="module:qualname"):
        Make("no_colon")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: (
            st.lists(children)
            | st.tuples(children, children)
            | st.dictionaries(st.text(), children)
        ),
        max_leaves=20,
    )
)
def test_plain_values_round_trip(value):
    assert round_trip(value) == value
