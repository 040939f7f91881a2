"""A question set on the Python language reference, written for this course.

Each question has a short answer that appears word for word in one topic page of the manual
(``pretrained.python_docs()``, the ``pydoc`` topics that ship with CPython), and that topic is
its gold document. We wrote them by reading the statement, expression and data-model pages and
asking for a keyword, exception or special-method name stated there (a test checks that every
answer occurs in its gold page). Every fourth question (index % 4 == 0) is in the ``"dev"``
split, used to look at prompts and retrieval settings; the other three quarters are the
held-out ``"test"`` split on which the lesson reports numbers.

The corpus (``RAG_TOPICS``, ~115 KB) is the gold pages plus neighbouring pages that use the same
words (classes, functions, loops, exceptions, ...), so retrieval must tell them apart; it is a
part of the manual, not all of it, so that embedding it takes seconds, not minutes, on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RAGQuestion:
    question: str
    answer: str
    topic: str  # the python_docs() page that states the answer


_QUESTIONS = [
    (
        "Which statement is a null operation that does nothing when it is executed?",
        "pass",
        "pass",
    ),
    (
        "Which statement terminates the nearest enclosing loop?",
        "break",
        "break",
    ),
    (
        "Which statement continues with the next cycle of the nearest enclosing loop?",
        "continue",
        "continue",
    ),
    (
        "Which statement declares that the listed identifiers are to be interpreted as globals?",
        "global",
        "global",
    ),
    (
        "Which statement makes the listed identifiers refer to previously bound variables"
        " in the nearest enclosing function scope, excluding globals?",
        "nonlocal",
        "nonlocal",
    ),
    (
        "Which statement is a convenient way to insert debugging assertions into a program?",
        "assert",
        "assert",
    ),
    (
        "Which built-in variable is False when optimization is requested, so that assert "
        "statements are skipped?",
        "__debug__",
        "assert",
    ),
    (
        "Which exception does a failing assert statement raise?",
        "AssertionError",
        "assert",
    ),
    (
        "Which exception does a bare raise statement raise when there is no active exception?",
        "RuntimeError",
        "raise",
    ),
    (
        "Which exception is raised when a generator function executes a return statement?",
        "StopIteration",
        "return",
    ),
    (
        "Which exception is raised when an asynchronous generator executes an empty "
        "return statement?",
        "StopAsyncIteration",
        "return",
    ),
    (
        "Which exception is raised when a del statement deletes a name that is unbound?",
        "NameError",
        "del",
    ),
    (
        "Which clause of a try statement specifies a cleanup handler that is always executed?",
        "finally",
        "try",
    ),
    (
        "Which method of the context manager does a with statement call before running its body?",
        "__enter__",
        "with",
    ),
    (
        "Which method of the context manager does a with statement call after its body has run?",
        "__exit__",
        "with",
    ),
    (
        "Which keyword creates anonymous functions in an expression?",
        "lambda",
        "lambda",
    ),
    (
        "Which exception is raised when the attribute named in an attribute reference is "
        "not available?",
        "AttributeError",
        "attribute-references",
    ),
    (
        "Which special method is called when the default attribute access fails because "
        "the name is not an instance attribute or found in the class tree?",
        "__getattr__",
        "attribute-access",
    ),
    (
        "Which special method is called unconditionally to implement every attribute "
        "access for instances of a class?",
        "__getattribute__",
        "attribute-access",
    ),
    (
        "Which special method does the membership test operator in call on a container?",
        "__contains__",
        "comparisons",
    ),
    (
        "Which exception does looking up a missing key with d[key] raise for a dictionary?",
        "KeyError",
        "typesmapping",
    ),
    (
        "Which method may a subclass of dict define to handle keys that are not in the dictionary?",
        "__missing__",
        "typesmapping",
    ),
    (
        "Which exception does division by zero raise?",
        "ZeroDivisionError",
        "binary",
    ),
    (
        "Which special method is called to create a new instance of a class, before it is"
        " initialised?",
        "__new__",
        "customization",
    ),
    (
        "Which special method is called when an instance is about to be destroyed?",
        "__del__",
        "customization",
    ),
    (
        "Which special method computes the official string representation of an object?",
        "__repr__",
        "customization",
    ),
    (
        "Which special method is called by the built-in function hash()?",
        "__hash__",
        "customization",
    ),
    (
        "Which special method is called to implement truth value testing when a class "
        "defines no __len__?",
        "__bool__",
        "truth",
    ),
    (
        "Which exception is raised when a keyword argument fills a parameter slot that is"
        " already filled in a call?",
        "TypeError",
        "calls",
    ),
    (
        "Which exception is raised when from-import cannot find the requested attribute "
        "or submodule?",
        "ImportError",
        "import",
    ),
    (
        "Which module attribute lists the public names that from module import * imports?",
        "__all__",
        "import",
    ),
    (
        "Which singleton object is written as three dots and has the built-in name Ellipsis?",
        "Ellipsis",
        "bltin-ellipsis-object",
    ),
]

QUESTIONS: tuple[RAGQuestion, ...] = tuple(RAGQuestion(*q) for q in _QUESTIONS)

RAG_TOPICS: tuple[str, ...] = tuple(
    sorted(
        {q.topic for q in QUESTIONS}
        | {"booleans", "bltin-null-object", "class", "exceptions", "for", "function", "if"}
        | {"shifting", "subscriptions", "unary", "while", "yield"}
    )
)


def python_questions(split: Literal["dev", "test", "all"] = "test") -> list[RAGQuestion]:
    """The questions of ``split`` (see the module docstring)."""
    if split not in ("dev", "test", "all"):
        raise ValueError(f"split must be 'dev', 'test' or 'all', got {split!r}.")
    return [
        q for i, q in enumerate(QUESTIONS) if split == "all" or (i % 4 == 0) == (split == "dev")
    ]


def rag_corpus(topics: tuple[str, ...] = RAG_TOPICS) -> dict[str, str]:
    """The manual pages the RAG lesson retrieves from, by topic name."""
    from llmcourse.pretrained import python_docs

    docs = python_docs()
    missing = [t for t in topics if t not in docs]
    if missing:
        raise ValueError(f"No such topics in python_docs(): {missing}.")
    return {t: docs[t] for t in topics}
