"""JSON (optionally shaped by a JSON Schema) as a character-level state machine.

Constrained decoding (``llmcourse.infer.constrained``) needs a grammar it can ask two things:
*can this character come next?* and *how far is the end?* This module answers both for JSON.
A state is an immutable stack of frames (a pushdown automaton: JSON nests, so no finite
automaton recognises it), one frame per value being written:

- ``("root", node, done)``: the whole document; ``done`` once the top value is closed;
- ``("obj", node, phase, index, pending, ws)``: an object; ``phase`` is where we are in
  ``{ "key" : value , ... }`` (``open``, ``key``, ``colon``, ``value``, ``after``, ``comma``),
  ``index`` the next schema property allowed, ``pending`` the schema of the value after the key;
- ``("arr", node, phase, count, ws)``: an array and how many items it has;
- ``("str", escape)``: inside a string (``escape``: 0, -1 after a backslash, k hex digits left);
- ``("num", integer, phase)``: a number, ``phase`` a state of ``-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?``;
- ``("lit", options, pos)``: a fixed spelling (``true``, ``null``, an ``enum`` value, a key of a
  schema object) of which ``pos`` characters are written.

``step(state, ch)`` returns the next state or ``None`` (the character is not allowed);
``distance(state)`` is the least number of characters that completes the document, exact,
which lets a decoder always finish inside its token budget (``constrained.py``). Whitespace
between tokens is allowed in runs of at most ``MAX_WHITESPACE`` characters, so a model cannot
spend its budget on blanks, and nesting stops at ``MAX_DEPTH``.

Schemas: ``compile_schema`` accepts the subset of JSON Schema that structured outputs use
(OpenAI's "strict" mode): ``type`` object (``properties``, ``required``; properties are written
in the order given, optional ones may be left out, no others), array (``items``, ``minItems``,
``maxItems``), string, number, integer, boolean, null; ``enum`` and ``const``. Anything else
raises a ``ValueError`` naming the keyword. ``JSON_OBJECT`` is any JSON object (``"json_object"``
mode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_WHITESPACE = 8
MAX_DEPTH = 12
WHITESPACE = " \n\t"
DIGITS = "0123456789"
HEX = "0123456789abcdefABCDEF"
ESCAPES = '"\\/bfnrtu'


@dataclass(frozen=True)
class AnyValue:
    """Any JSON value (nesting bounded by ``MAX_DEPTH``)."""


@dataclass(frozen=True)
class StringNode:
    pass


@dataclass(frozen=True)
class NumberNode:
    integer: bool = False


@dataclass(frozen=True)
class LiteralNode:
    """One of fixed spellings: ``true``/``false``, ``null``, an ``enum``'s JSON texts."""

    options: tuple[str, ...]


@dataclass(frozen=True)
class ArrayNode:
    items: Node
    min_items: int = 0
    max_items: int | None = None


@dataclass(frozen=True)
class ObjectNode:
    """``free``: any keys, any values (``json_object``); else ``properties`` in order."""

    properties: tuple[tuple[str, Node], ...] = ()
    required: frozenset[str] = frozenset()
    free: bool = False


Node = AnyValue | StringNode | NumberNode | LiteralNode | ArrayNode | ObjectNode
State = tuple[tuple[Any, ...], ...]

JSON_OBJECT = ObjectNode(free=True)

_SUPPORTED = {
    "type", "properties", "required", "items", "minItems", "maxItems", "enum", "const",
    "additionalProperties", "title", "description", "$schema", "strict", "default",
}  # fmt: skip


def compile_schema(schema: dict[str, Any]) -> Node:
    """A JSON Schema (the subset in the module docstring) as grammar nodes."""
    if not isinstance(schema, dict):
        raise ValueError(f"A schema must be a JSON object, got {schema!r}.")
    unknown = sorted(set(schema) - _SUPPORTED)
    if unknown:
        raise ValueError(
            f"Schema keyword {unknown[0]!r} is not supported; use type, properties, required, "
            "items, minItems, maxItems, enum or const."
        )
    if "const" in schema:
        return LiteralNode((json.dumps(schema["const"]),))
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise ValueError(f"enum must be a non-empty list, got {values!r}.")
        return LiteralNode(tuple(dict.fromkeys(json.dumps(v) for v in values)))
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise ValueError("properties must be an object mapping names to schemas.")
        if not properties:
            return JSON_OBJECT
        required = schema.get("required", [])  # JSON Schema: nothing unless listed
        missing = [name for name in required if name not in properties]
        if missing:
            raise ValueError(f"required names {missing[0]!r}, which is not in properties.")
        return ObjectNode(
            tuple((name, compile_schema(sub)) for name, sub in properties.items()),
            frozenset(required),
        )
    if kind == "array":
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if not isinstance(low, int) or low < 0 or (high is not None and high < max(low, 1)):
            raise ValueError(f"minItems/maxItems must be 0 <= min <= max, max >= 1: {low}, {high}.")
        return ArrayNode(compile_schema(schema.get("items", {"type": "string"})), low, high)
    simple = {
        "string": StringNode(),
        "number": NumberNode(),
        "integer": NumberNode(integer=True),
        "boolean": LiteralNode(("true", "false")),
        "null": LiteralNode(("null",)),
    }
    if kind in simple:
        return simple[kind]
    raise ValueError(
        f"Schema type {kind!r} is not supported: give one of object, array, string, number, "
        "integer, boolean, null (or enum/const)."
    )


# ---------------------------------------------------------------------------------------------
# Lengths: the shortest text of a node, and of what an object or array still needs
# ---------------------------------------------------------------------------------------------


def min_length(node: Node) -> int:
    """Characters in the shortest JSON text ``node`` accepts (``0``, ``""``, ``{}``, ...)."""
    if isinstance(node, (AnyValue, NumberNode)):
        return 1
    if isinstance(node, StringNode):
        return 2
    if isinstance(node, LiteralNode):
        return min(len(o) for o in node.options)
    if isinstance(node, ArrayNode):
        return 2 + node.min_items * min_length(node.items) + max(node.min_items - 1, 0)
    if node.free:
        return 2
    return 1 + _object_rest(node, 0, first=True)


def _key(name: str) -> str:
    return json.dumps(name)


def _object_rest(node: ObjectNode, index: int, first: bool) -> int:
    """Characters to close an object whose next property is ``index``: the required ones left,
    each as ``,"key":value`` (no comma before the first when ``first``), then ``}``."""
    total, count = 1, 0
    for name, sub in node.properties[index:]:
        if name in node.required:
            total += len(_key(name)) + 1 + min_length(sub)
            count += 1
    return total + max(count - (1 if first else 0), 0)


def _key_options(node: ObjectNode, index: int) -> list[int]:
    """Indices of the properties that may come next: up to and including the first required."""
    options = []
    for j in range(index, len(node.properties)):
        options.append(j)
        if node.properties[j][0] in node.required:
            break
    return options


def _required_left(node: ObjectNode, index: int) -> bool:
    return any(name in node.required for name, _ in node.properties[index:])


# ---------------------------------------------------------------------------------------------
# The state machine
# ---------------------------------------------------------------------------------------------


def initial_state(node: Node) -> State:
    """The state before the first character of a document of ``node``."""
    return (("root", node, False),)


def is_complete(state: State) -> bool:
    """True once the document is whole (nothing more may be written)."""
    return len(state) == 1 and state[0][2]


def _start(node: Node, ch: str, depth: int) -> tuple[Any, ...] | None:
    """The frame a value of ``node`` opens with ``ch`` as its first character (``None``: it
    cannot start with ``ch``)."""
    if isinstance(node, AnyValue):
        if ch in "{[" and depth >= MAX_DEPTH:
            return None
        node = {
            "{": JSON_OBJECT, "[": ArrayNode(AnyValue()), '"': StringNode(),
            "t": LiteralNode(("true",)), "f": LiteralNode(("false",)), "n": LiteralNode(("null",)),
        }.get(ch, NumberNode())  # fmt: skip
    if isinstance(node, ObjectNode):
        return ("obj", node, "open", 0, None, 0) if ch == "{" else None
    if isinstance(node, ArrayNode):
        return ("arr", node, "open", 0, 0) if ch == "[" else None
    if isinstance(node, StringNode):
        return ("str", 0) if ch == '"' else None
    if isinstance(node, NumberNode):
        if ch == "-":
            return ("num", node.integer, "sign")
        if ch in DIGITS:
            return ("num", node.integer, "zero" if ch == "0" else "int")
        return None
    options = tuple(o for o in node.options if o[0] == ch)
    return ("lit", options, 1) if options else None


def _push(state: State, parent: tuple[Any, ...], child: tuple[Any, ...]) -> State:
    """Replace the top frame by ``parent`` and put ``child`` on it; a literal that is already
    whole (``"a"`` of an enum, a one-letter option) closes at once."""
    pushed = (*state[:-1], parent, child)
    if child[0] == "lit" and _literal_closed(child):
        return _pop(pushed, child)
    return pushed


def _literal_closed(frame: tuple[Any, ...]) -> bool:
    """A literal is closed when one option is whole and none goes on."""
    options, pos = frame[1], frame[2]
    return any(len(o) == pos for o in options) and all(len(o) <= pos for o in options)


def _pop(state: State, child: tuple[Any, ...]) -> State:
    """Close the top frame; a key tells its object which property it named."""
    parent = state[-2]
    if parent[0] == "obj" and parent[2] == "key":
        node = parent[1]
        if node.free:
            return (*state[:-2], ("obj", node, "colon", 0, AnyValue(), 0))
        matched = next(o for o in child[1] if len(o) == child[2])
        j = next(i for i, (name, _) in enumerate(node.properties) if _key(name) == matched)
        return (*state[:-2], ("obj", node, "colon", j + 1, node.properties[j][1], 0))
    return state[:-1]


def step(state: State, ch: str) -> State | None:
    """The state after writing ``ch``, or ``None`` when ``ch`` cannot come next."""
    frame = state[-1]
    kind = frame[0]
    if kind == "str":
        escape = frame[1]
        if escape == 0:
            if ch == '"':
                return _pop(state, frame)
            if ch == "\\":
                return (*state[:-1], ("str", -1))
            return None if ord(ch) < 0x20 else state
        if escape == -1:
            if ch not in ESCAPES:
                return None
            return (*state[:-1], ("str", 4 if ch == "u" else 0))
        return (*state[:-1], ("str", escape - 1)) if ch in HEX else None
    if kind == "num":
        return _step_number(state, frame, ch)
    if kind == "lit":
        options, pos = frame[1], frame[2]
        going_on = tuple(o for o in options if len(o) > pos and o[pos] == ch)
        if going_on:
            new = ("lit", going_on, pos + 1)
            nxt = (*state[:-1], new)
            return _pop(nxt, new) if _literal_closed(new) else nxt
        if any(len(o) == pos for o in options):  # whole, and ``ch`` belongs to the parent
            return step(_pop(state, frame), ch)
        return None
    if kind == "root":
        if frame[2]:
            return None
        child = _start(frame[1], ch, len(state))
        return None if child is None else _push(state, ("root", frame[1], True), child)
    if kind == "obj":
        return _step_object(state, frame, ch)
    return _step_array(state, frame, ch)


def _step_number(state: State, frame: tuple[Any, ...], ch: str) -> State | None:
    integer, phase = frame[1], frame[2]
    nxt = None
    if ch in DIGITS:
        nxt = {
            "sign": "zero" if ch == "0" else "int", "int": "int", "dot": "frac", "frac": "frac",
            "e": "exp", "esign": "exp", "exp": "exp",
        }.get(phase)  # fmt: skip
    elif ch == "." and not integer and phase in ("zero", "int"):
        nxt = "dot"
    elif ch in "eE" and not integer and phase in ("zero", "int", "frac"):
        nxt = "e"
    elif ch in "+-" and phase == "e":
        nxt = "esign"
    if nxt is not None:
        return (*state[:-1], ("num", integer, nxt))
    if phase in ("zero", "int", "frac", "exp"):  # the number is whole: ``ch`` is the parent's
        return step(state[:-1], ch)
    return None


def _step_object(state: State, frame: tuple[Any, ...], ch: str) -> State | None:
    _, node, phase, index, pending, ws = frame
    if ch in WHITESPACE:
        if phase == "key" or ws >= MAX_WHITESPACE:
            return None
        return (*state[:-1], ("obj", node, phase, index, pending, ws + 1))
    if phase in ("open", "comma") and ch == '"':
        if node.free:
            return _push(state, ("obj", node, "key", index, None, 0), ("str", 0))
        keys = tuple(_key(node.properties[j][0]) for j in _key_options(node, index))
        if not keys:
            return None
        return _push(state, ("obj", node, "key", index, None, 0), ("lit", keys, 1))
    if phase in ("open", "after") and ch == "}":
        return None if not node.free and _required_left(node, index) else _pop(state, frame)
    if phase == "after" and ch == ",":
        more = node.free or index < len(node.properties)
        return (*state[:-1], ("obj", node, "comma", index, None, 0)) if more else None
    if phase == "colon" and ch == ":":
        return (*state[:-1], ("obj", node, "value", index, pending, 0))
    if phase == "value":
        child = _start(pending, ch, len(state))
        if child is not None:
            return _push(state, ("obj", node, "after", index, None, 0), child)
    return None


def _step_array(state: State, frame: tuple[Any, ...], ch: str) -> State | None:
    _, node, phase, count, ws = frame
    if ch in WHITESPACE:
        return None if ws >= MAX_WHITESPACE else (*state[:-1], ("arr", node, phase, count, ws + 1))
    if phase in ("open", "after") and ch == "]":
        return _pop(state, frame) if count >= node.min_items else None
    if phase == "after" and ch == ",":
        full = node.max_items is not None and count >= node.max_items
        return None if full else (*state[:-1], ("arr", node, "comma", count, 0))
    if phase in ("open", "comma"):
        if phase == "open" and node.max_items == 0:
            return None
        child = _start(node.items, ch, len(state))
        if child is not None:
            return _push(state, ("arr", node, "after", count + 1, 0), child)
    return None


# ---------------------------------------------------------------------------------------------
# Distance to the end
# ---------------------------------------------------------------------------------------------

_NUMBER_LEFT = {"sign": 1, "dot": 1, "e": 1, "esign": 1, "zero": 0, "int": 0, "frac": 0, "exp": 0}


def distance(state: State) -> int:
    """The least number of characters that makes the document whole (0: it is)."""
    total = 0
    i = len(state) - 1
    while i >= 0:
        frame = state[i]
        kind = frame[0]
        if kind == "root":
            total += 0 if frame[2] else min_length(frame[1])
        elif kind == "str":
            total += 1 if frame[1] == 0 else 2 if frame[1] == -1 else frame[1] + 1
        elif kind == "num":
            total += _NUMBER_LEFT[frame[2]]
        elif kind == "lit" and i > 0 and state[i - 1][0] == "obj" and state[i - 1][2] == "key":
            # A key of a schema object: which property it names decides what must follow.
            node, pos = state[i - 1][1], frame[2]
            total += min(
                len(_key(node.properties[j][0])) - pos + 1 + min_length(node.properties[j][1])
                + _object_rest(node, j + 1, first=False)
                for j in range(len(node.properties))
                if _key(node.properties[j][0]) in frame[1]
            )  # fmt: skip
            i -= 1  # the object is counted
        elif kind == "lit":
            total += min(len(o) - frame[2] for o in frame[1])
        elif kind == "obj":
            total += _object_distance(frame)
        else:
            total += _array_distance(frame)
        i -= 1
    return total


def _object_distance(frame: tuple[Any, ...]) -> int:
    _, node, phase, index, pending, _ = frame
    if node.free:
        after = 1  # "}"
        return {
            "open": 1,
            "after": 1,
            "comma": 4 + after,
            "key": 2 + after,
            "colon": 2 + after,
            "value": 1 + after,
        }[phase]  # fmt: skip  (comma: "":0} ; key: the string's own quote is the child's)
    if phase in ("colon", "value"):
        return (phase == "colon") + min_length(pending) + _object_rest(node, index, first=False)
    if phase == "comma":
        if _required_left(node, index):
            return _object_rest(node, index, first=True)
        return (
            min(
                len(_key(node.properties[j][0])) + 1 + min_length(node.properties[j][1])
                for j in range(index, len(node.properties))
            )
            + 1
        )
    return _object_rest(node, index, first=phase == "open")


def _array_distance(frame: tuple[Any, ...]) -> int:
    _, node, phase, count, _ = frame
    item = min_length(node.items)
    if phase == "comma":
        left = max(node.min_items - count, 1)
        return left * item + (left - 1) + 1
    left = max(node.min_items - count, 0)
    return left * item + max(left - (phase == "open"), 0) + 1
