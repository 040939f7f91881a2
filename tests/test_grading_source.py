"""The source rules: answers must be the learner's own, and no notebook may tamper with grading.

Each case is the source of a notebook's code cells; ``check_source`` reads it with ``ast`` in
this process, without running anything.
"""

from __future__ import annotations

import json

import pytest
from grading_fixtures.notebooks import ROOT

from llmcourse.grading.source import check_source
from llmcourse.grading.spec import exercises_for

ATTENTION = '''
def attention(q, k, v, mask=None):
    """Scaled dot-product attention, as in llmcourse.nn.attention.scaled_dot_product_attention."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v, torch.softmax(scores, dim=-1)
'''
IMPORTS = (
    "import math\nimport torch\nimport torch.nn.functional as F\n"
    "from llmcourse.grading import check"
)


def report(*cells: str, lesson: str = "03", folder=None):
    return check_source(list(enumerate((IMPORTS, *cells))), exercises_for(lesson), folder)


def rejected(*cells: str, exercise: str = "03.attention", lesson: str = "03") -> str:
    return report(*cells, lesson=lesson).rejection(exercise)


def test_an_own_answer_passes_and_docstrings_do_not_count():
    found = report(ATTENTION, 'check("03.attention", globals())')
    assert found.notebook == [] and found.exercises == {}
    assert found.undefined["03.rmsnorm"] == ["rms_norm"]  # not defined anywhere: missing
    assert "03.attention" not in found.undefined


def test_try_it_is_allowed_beside_check():
    found = report("from llmcourse.grading import try_it", ATTENTION, "with try_it():\n    pass")
    assert found.notebook == [] and found.exercises == {}


@pytest.mark.parametrize(
    "cell",
    [
        "from llmcourse.nn.attention import scaled_dot_product_attention as attention",
        "import llmcourse.nn.attention\n"
        "attention = llmcourse.nn.attention.scaled_dot_product_attention",
        "from llmcourse.nn import attention as A\nattention = A.scaled_dot_product_attention",
        "def attention(q, k, v, mask=None):\n    return F.scaled_dot_product_attention(q, k, v)",
        "import llmcourse.nn.attention as m\ndef attention(q, k, v, mask=None):\n"
        "    return getattr(m, 'scaled_dot_product_attention')(q, k, v, mask)",
        "import importlib\n"
        "sdpa = importlib.import_module('llmcourse.nn.attention').scaled_dot_product_attention",
        "import sys\nf = sys.modules['llmcourse.nn.attention'].scaled_dot_product_attention",
        "from llmcourse.nn.attention import *\n" + ATTENTION + "x = scaled_dot_product_attention",
        "attention = __import__('torch').nn.functional.scaled_dot_product_attention",
        "%time from llmcourse.nn.attention import scaled_dot_product_attention",
        "exec('from llmcourse.nn.attention import scaled_dot_product_attention as attention')",
    ],
)
def test_the_package_or_torch_version_scores_zero_with_a_reason(cell):
    reason = rejected(cell)
    assert "the package's own version of what 03.attention asks you to write" in reason or (
        "is imported from" in reason or "is set to" in reason
    ), reason
    assert reason.startswith("cell 2, line")


def test_aliasing_names_the_package_function_and_leaves_other_exercises_alone():
    found = report("from llmcourse.nn.attention import scaled_dot_product_attention as attention")
    reason = found.rejection("03.attention")
    assert "llmcourse.nn.attention.scaled_dot_product_attention" in reason
    assert "`attention` is imported from llmcourse.nn.attention" in reason
    assert found.rejection("03.rmsnorm") == ""


def test_a_re_export_is_the_same_function():
    # llmcourse.train re-exports causal_lm_loss from llmcourse.train.objectives
    assert "llmcourse.train" in rejected(
        "from llmcourse.train import causal_lm_loss as loss\n"
        "def causal_lm_loss(logits, labels):\n    return loss(logits, labels)",
        exercise="04.causal_lm_loss",
        lesson="04",
    )


def test_permitted_helpers_and_other_package_functions_are_fine():
    assert not rejected(
        "from llmcourse.data.dedup import EMPTY, hash_coefficients\n"
        "def signature_of_hashes(hashes, num_perm=128, seed=0):\n"
        "    return hash_coefficients(num_perm, seed)",
        exercise="07.minhash_signature",
        lesson="07",
    )
    assert not rejected("from llmcourse.nn.masks import causal_mask\n" + ATTENTION)


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        (
            "import llmcourse.grading.driver as d\nd.run = print",
            "uses the grader's internals (llmcourse.grading.driver)",
        ),
        (
            "from llmcourse.grading import evaluate",
            "uses the grader's internals (llmcourse.grading.evaluate)",
        ),
        (
            "import sys\nsys.modules['llmcourse.grading.calls'].run_cases = None",
            "llmcourse.grading.calls",
        ),
        ("code = 'x = 1'\nexec(code)", "runs code built while the notebook runs (exec)"),
        ("eval(input())", "runs code built while the notebook runs (eval)"),
        (
            "import pickle\nf = pickle.loads(b'...')",
            "runs code the grader cannot read (pickle.loads)",
        ),
        ("%run helpers.py", "runs another file (%run)"),
        ("globals()['attention'] = print", "binds names behind the source's back"),
        ("globals().update(attention=print)", "binds names behind the source's back"),
        ("import builtins\nbuiltins.attention = print", "binds names behind the source's back"),
        ("import sys\nsys.path.insert(0, '/tmp')", "changes sys.path"),
        (
            "import importlib\nm = importlib.import_module(name)",
            "imports a module named while the notebook runs",
        ),
        ("get_ipython().run_cell('x = 1')", "runs code through IPython (run_cell)"),
        ("from . import helpers", "imports relative to the notebook's folder"),
    ],
)
def test_tampering_zeroes_every_exercise(cell, says):
    found = report(ATTENTION, cell)
    assert found.notebook, cell
    for exercise in ("03.attention", "03.rmsnorm"):
        assert found.rejection(exercise).startswith("grading cannot trust this notebook: cell 3")
    assert says in found.rejection("03.attention")


def test_importing_a_module_from_the_notebooks_folder(tmp_path):
    (tmp_path / "helpers.py").write_text("x = 1\n")
    found = report(ATTENTION, "from helpers import x", folder=tmp_path)
    assert "imports helpers from the notebook's folder" in found.rejection("03.attention")
    assert report(ATTENTION, "import numpy", folder=tmp_path).notebook == []


def test_answers_bound_other_than_by_def():
    reason = rejected(ATTENTION + "\nattention = print")
    assert "`attention` is set to `print`; define it in the notebook with def" in reason
    assert not rejected("attention = lambda q, k, v, mask=None: (q, q)")
    assert "bound inside a function" in rejected(
        "def sneaky():\n    global attention\n    attention = print"
    )
    assert "is bound by a loop" in rejected("for attention in [print]:\n    pass")


def test_magics_and_syntax_errors_do_not_break_the_reader():
    found = report("!ls -la\n%matplotlib inline", "def attention(q, k, v, mask=None)\n    pass")
    assert found.notebook == [] and found.undefined["03.attention"] == ["attention"]


def test_every_solution_notebook_follows_the_rules():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        lesson = path.name.split("_")[0]
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]
        found = check_source(code, exercises_for(lesson), path.parent)
        assert (found.notebook, found.exercises, found.undefined) == ([], {}, {}), path.name
