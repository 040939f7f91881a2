"""Are the answers the learner's own? Decided from the notebook's source, read by the grader.

``llmcourse grade`` reads every code cell (IPython syntax such as ``!cmd`` and ``%time``
translated first) with :mod:`ast`, before any of it runs, and finds:

- per exercise, **not your own**: an answer that is not defined in the notebook with ``def`` or
  ``class`` (or a ``lambda``), e.g. ``from llmcourse.nn.attention import
  scaled_dot_product_attention as attention`` or ``attention = llmcourse.nn...``; or any use,
  anywhere in the notebook, of a name the exercise forbids: its reference and its ``forbid``
  list (``torch.nn.functional.scaled_dot_product_attention``), except what ``permit`` allows.
  Names are resolved through imports, aliases, attribute chains, ``getattr`` with a literal
  name, ``importlib.import_module``/``__import__`` with a literal and ``sys.modules[...]``,
  and then compared by identity in the grader, so re-exports count too. The exercise scores 0.
- for the whole notebook, **grading cannot trust it**: code that uses the grader's internals
  (anything in ``llmcourse.grading`` but ``check`` and ``try_it``), runs code built while the
  notebook runs (``exec``/``eval``/``compile`` of a non-literal, ``%run``, unpickling), binds
  names behind the source's back (``globals()[...] =``), changes ``sys.path`` or imports a
  module from the notebook's folder. Every exercise scores 0.

This is a rule about source a person can read, not a sandbox: code that hides what it calls
behind layers of indirection can escape it, and the README says so.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcourse.grading.spec import Exercise

ALLOWED_GRADING = {
    "llmcourse.grading",
    "llmcourse.grading.check",
    "llmcourse.grading.CheckResult",
    "llmcourse.grading.try_it",
}
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_BUILTINS = {"exec", "eval", "compile", "__import__", "getattr", "vars", "globals", "locals"}
_RUNS_CODE = {
    "builtins.exec",
    "builtins.eval",
    "builtins.compile",
    "importlib.util.spec_from_file_location",
    "importlib.machinery.SourceFileLoader",
    "runpy.run_path",
    "runpy.run_module",
    "types.FunctionType",
    "types.CodeType",
    "marshal.loads",
    "marshal.load",
    "pickle.loads",
    "pickle.load",
    "dill.loads",
    "dill.load",
    "cloudpickle.loads",
    "cloudpickle.load",
}
_IMPORTS = {"builtins.__import__", "importlib.import_module", "importlib.__import__"}
# IPython magics whose argument is Python code run in the kernel.
_CODE_MAGICS = {"time", "timeit", "prun", "capture", "debug"}
_SHELL_RUNS = {
    "run_cell",
    "run_cell_async",
    "run_code",
    "ex",
    "ev",
    "safe_execfile",
    "safe_execfile_ipy",
    "safe_run_module",
    "push",
    "run_ast_nodes",
}


@dataclass(frozen=True)
class Finding:
    """One thing in the source that costs points; ``cell`` counts from 1, as Jupyter shows."""

    cell: int
    line: int
    text: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.text}"


@dataclass
class SourceReport:
    """What the source rules found: per exercise, and for the whole notebook."""

    notebook: list[Finding] = field(default_factory=list)
    exercises: dict[str, list[Finding]] = field(default_factory=dict)
    undefined: dict[str, list[str]] = field(default_factory=dict)  # exercise -> names

    def rejection(self, exercise_id: str) -> str:
        """Why ``exercise_id`` scores 0 by the source rules, or ``""``."""
        if self.notebook:
            return "grading cannot trust this notebook: " + _grouped(self.notebook)
        found = self.exercises.get(exercise_id)
        return _grouped(found) if found else ""


def _grouped(findings: list[Finding], limit: int = 3) -> str:
    """Findings with the same text once, with all their places: "cell 3, line 4 and cell 9,
    line 1: uses ..."."""
    places: dict[str, list[str]] = {}
    for finding in findings:
        places.setdefault(finding.text, []).append(f"cell {finding.cell}, line {finding.line}")
    parts = []
    for text, where in list(places.items())[:limit]:
        shown = " and ".join(where[:3]) + (
            f" (and {len(where) - 3} more)" if len(where) > 3 else ""
        )
        parts.append(f"{shown}: {text}")
    return "; ".join(parts)


def check_source(
    cells: Sequence[tuple[int, str]], exercises: Iterable[Exercise], folder: Path | None = None
) -> SourceReport:
    """Apply the rules to code cells ``(index in the notebook, source)``."""
    exercises = list(exercises)
    scanner = _Scanner(exercises, folder)
    trees = []
    for index, source in cells:
        tree = _parse(source)
        if tree is not None:
            trees.append((index + 1, tree))
    for _, tree in trees:  # aliases first: a later cell may use an import made anywhere
        scanner.collect_aliases(tree)
    for cell, tree in trees:
        scanner.scan(cell, tree)
    return scanner.report()


def _parse(source: str) -> ast.Module | None:
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # not IPython syntax the transformer knows: parse it as it is
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None  # the kernel rejects it too: it defines nothing


class _Forbidden:
    """One exercise's forbidden names, resolved to objects where they can be."""

    def __init__(self, exercise: Exercise) -> None:
        self.exercise = exercise
        names = list(exercise.forbid)
        for reference in exercise.references.values():
            qualified = _qualified_name(reference)
            if qualified:
                names.append(qualified)
        self.names = names
        self.objects = [(name, _resolve(name)) for name in names]
        self.permitted = [(name, _resolve(name)) for name in exercise.permit]
        self.roots = {name.split(".")[0] for name in names}

    def matches(self, dotted: str, resolved: Any) -> str:
        """The forbidden name ``dotted`` stands for, or ``""``."""
        for name, target in self.permitted:
            if dotted == name or (target is not _UNRESOLVED and resolved is target):
                return ""
        for name, target in self.objects:
            if dotted == name or dotted.startswith(name + "."):
                return name
            if target is _UNRESOLVED or resolved is _UNRESOLVED:
                continue
            if resolved is target:
                return name
            if _is_module(target):
                module = getattr(resolved, "__module__", None)
                if isinstance(module, str) and (
                    module == target.__name__ or module.startswith(target.__name__ + ".")
                ):
                    return name
        return ""


class _Scanner:
    def __init__(self, exercises: list[Exercise], folder: Path | None) -> None:
        self.exercises = exercises
        self.folder = folder
        self.forbidden = [_Forbidden(ex) for ex in exercises]
        self.trusted_roots = {"llmcourse"} | {r for f in self.forbidden for r in f.roots}
        self.aliases: dict[str, str] = {}
        self.notebook: list[Finding] = []
        self.per_exercise: dict[str, list[Finding]] = {}
        self.bindings: dict[str, list[tuple[str, int, int, str]]] = {}
        self.answer_names = {name for ex in exercises for name in ex.answers}
        self._resolved: dict[str, Any] = {}
        self._cell = 0
        self._prose: set[int] = set()

    # -- pass 1: what names stand for -------------------------------------------------------------

    def collect_aliases(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name == "*":
                        self._star_import(node.module)
                    else:
                        self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):  # then `x = some.module.thing` (a second name for it)
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    dotted = self.dotted(node.value)
                    if dotted:
                        self.aliases.setdefault(target.id, dotted)

    def _star_import(self, module: str) -> None:
        if module.split(".")[0] not in self.trusted_roots:
            return
        try:
            imported = importlib.import_module(module)
        except Exception:
            return
        names = getattr(imported, "__all__", None) or [
            n for n in vars(imported) if not n.startswith("_")
        ]
        for name in names:
            self.aliases.setdefault(str(name), f"{module}.{name}")

    def dotted(self, node: ast.AST) -> str | None:
        """The qualified name an expression stands for, when the source says it plainly."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in _BUILTINS:
                return f"builtins.{node.id}"
            return None
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            function = self.dotted(node.func)
            literal = _literal(node.args[0]) if node.args else None
            if function == "builtins.getattr" and len(node.args) >= 2:
                base, name = self.dotted(node.args[0]), _literal(node.args[1])
                return f"{base}.{name}" if base and name else None
            if function in _IMPORTS and literal:
                fromlist = len(node.args) > 3 or any(k.arg == "fromlist" for k in node.keywords)
                if function == "builtins.__import__" and not fromlist:
                    return literal.split(".")[0]
                return literal
            return None
        if isinstance(node, ast.Subscript) and self.dotted(node.value) == "sys.modules":
            return _literal(node.slice)
        return None

    # -- pass 2: the rules ------------------------------------------------------------------------

    def scan(self, cell: int, tree: ast.Module) -> None:
        self._cell = cell
        self._module_bindings(tree.body)
        self._skip_statements_of_strings(tree)
        for node in ast.walk(tree):
            self._visit(node)

    def _skip_statements_of_strings(self, tree: ast.AST) -> None:
        # A string that is a statement of its own (a docstring) is prose, not a reference.
        self._prose = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }

    def _visit(self, node: ast.AST) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                self._reference(alias.name, line)
                self._local_module(alias.name, line)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                self._flag(line, "imports relative to the notebook's folder")
            elif node.module:
                self._reference(node.module, line)
                self._local_module(node.module, line)
                for alias in node.names:
                    if alias.name != "*":
                        self._reference(f"{node.module}.{alias.name}", line)
        elif isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
            if isinstance(getattr(node, "ctx", None), ast.Store):
                self._store(node, line)
            dotted = self.dotted(node)
            if dotted and not (isinstance(node, ast.Name) and dotted.startswith("builtins.")):
                self._reference(dotted, line)
        elif isinstance(node, ast.Call):
            self._call(node, line)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in self._prose and _DOTTED.match(node.value):
                self._reference(node.value, line, literal=True)
        elif isinstance(node, ast.Global):
            for name in node.names:
                if name in self.answer_names:
                    self._bind(name, "global", line, f"`{name}` is bound inside a function")
        elif isinstance(node, ast.AugAssign):
            dotted = self.dotted(node.target)
            if dotted == "sys.path":
                self._flag(line, "changes sys.path (where modules are imported from)")

    def _call(self, node: ast.Call, line: int) -> None:
        function = self.dotted(node.func)
        literal = _literal(node.args[0]) if node.args else None
        if function:
            self._reference(function, line)
        if function in ("builtins.exec", "builtins.eval", "builtins.compile"):
            if literal is None:
                name = function.split(".")[1]
                self._flag(line, f"runs code built while the notebook runs ({name})")
            else:
                self._scan_literal_code(literal)
        elif function in _RUNS_CODE:
            self._flag(line, f"runs code the grader cannot read ({function})")
        elif function in _IMPORTS:
            if literal is None:
                self._flag(line, f"imports a module named while the notebook runs ({function})")
            else:
                self._reference(literal, line)
                self._local_module(literal, line)
        elif function == "torch.load" and any(
            k.arg == "weights_only" and _literal(k.value, allow=(bool,)) is False
            for k in node.keywords
        ):
            self._flag(line, "unpickles with torch.load(weights_only=False)")
        elif function in ("builtins.getattr", "builtins.vars") and node.args:
            name = _literal(node.args[1]) if len(node.args) > 1 else None
            if name is None:
                self._dynamic_lookup(self.dotted(node.args[0]), line)
        elif function in (
            "sys.path.append",
            "sys.path.insert",
            "sys.path.extend",
            "site.addsitedir",
            "sys.path.__setitem__",
        ):
            self._flag(line, "changes sys.path (where modules are imported from)")
        elif function in ("builtins.setattr", "builtins.delattr") and node.args:
            target = node.args[0]
            target_name = self.dotted(target)
            if target_name in ("__main__", "builtins") or (
                isinstance(target, ast.Subscript) and self.dotted(target.value) == "sys.modules"
            ):
                self._flag(line, "binds names behind the source's back (setattr on a module)")
        self._namespace_writes(node, line)
        self._ipython(node, line)

    def _namespace_writes(self, node: ast.Call, line: int) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in (
            "update",
            "__setitem__",
            "setdefault",
        ):
            owner = node.func.value
            if isinstance(owner, ast.Call) and self.dotted(owner.func) in (
                "builtins.globals",
                "builtins.vars",
                "builtins.locals",
            ):
                self._flag(line, "binds names behind the source's back (globals().update)")

    def _ipython(self, node: ast.Call, line: int) -> None:
        func = node.func
        if not (isinstance(func, ast.Attribute) and _is_get_ipython(func.value)):
            return
        if func.attr in _SHELL_RUNS:
            self._flag(line, f"runs code through IPython ({func.attr})")
        elif func.attr in ("run_line_magic", "run_cell_magic") and node.args:
            magic = _literal(node.args[0]) or ""
            if magic == "run":
                self._flag(line, "runs another file (%run); answers must be in this notebook")
            elif magic in _CODE_MAGICS:
                code = _literal(node.args[-1]) if len(node.args) >= 2 else None
                if code:
                    self._scan_literal_code(code)

    def _scan_literal_code(self, code: str) -> None:
        tree = _parse(code)
        if tree is not None:
            self.collect_aliases(tree)
            for inner in ast.walk(tree):
                self._visit(inner)

    def _store(self, node: ast.AST, line: int) -> None:
        if isinstance(node, ast.Subscript):
            owner = node.value
            if isinstance(owner, ast.Call) and self.dotted(owner.func) in (
                "builtins.globals",
                "builtins.vars",
                "builtins.locals",
            ):
                self._flag(line, "binds names behind the source's back (globals()[...] = ...)")
            elif self.dotted(owner) == "sys.modules":
                self._flag(line, "replaces a module in sys.modules")
        elif isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            if base and (
                base.split(".")[0] in self.trusted_roots or base in ("builtins", "__main__")
            ):
                self._reference(f"{base}.{node.attr}", line)
                if base in ("builtins", "__main__"):
                    self._flag(line, f"binds names behind the source's back ({base}.{node.attr})")

    def _dynamic_lookup(self, base: str | None, line: int) -> None:
        if not base:
            return
        for forbidden in self.forbidden:
            if any(name.startswith(base + ".") for name in forbidden.names):
                self._exercise(
                    forbidden.exercise.id,
                    line,
                    f"looks up a name in {base} while the notebook runs, so the grader cannot "
                    f"tell whether it is one {forbidden.exercise.id} forbids",
                )

    def _reference(self, dotted: str, line: int, literal: bool = False) -> None:
        if dotted.startswith("llmcourse.grading.") and dotted not in ALLOWED_GRADING:
            part = ".".join(dotted.split(".")[:3])
            self._flag(line, f"uses the grader's internals ({part})")
            return
        root = dotted.split(".")[0]
        resolved = self._resolve(dotted) if root in self.trusted_roots else _UNRESOLVED
        for forbidden in self.forbidden:
            name = forbidden.matches(dotted, resolved)
            if name:
                ex = forbidden.exercise
                self._exercise(
                    ex.id,
                    line,
                    f"uses {name}, the package's own version of what {ex.id} asks you to write "
                    "(write it yourself; that version is what your answer is compared with)",
                )

    def _resolve(self, dotted: str) -> Any:
        if dotted not in self._resolved:
            self._resolved[dotted] = _resolve(dotted)
        return self._resolved[dotted]

    def _local_module(self, module: str, line: int) -> None:
        if self.folder is None:
            return
        top = module.split(".")[0]
        if (self.folder / f"{top}.py").is_file() or (self.folder / top).is_dir():
            self._flag(
                line,
                f"imports {top} from the notebook's folder; answers and what they use must be in "
                "the notebook",
            )

    # -- where answers come from ------------------------------------------------------------------

    def _module_bindings(self, body: list[ast.stmt]) -> None:
        for statement in body:
            line = statement.lineno
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._bind(statement.name, "def", line, "")
                continue
            if isinstance(statement, (ast.Assign, ast.AnnAssign)):
                targets = (
                    statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                )
                for target in targets:
                    for name in _bound_names(target):
                        if isinstance(statement.value, ast.Lambda) and isinstance(target, ast.Name):
                            self._bind(name, "def", line, "")
                        else:
                            text = _source_text(statement.value)
                            self._bind(name, "assign", line, f"`{name}` is set to `{text}`")
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                for alias in statement.names:
                    name = alias.asname or alias.name.split(".")[0]
                    origin = (
                        alias.name
                        if isinstance(statement, ast.Import)
                        else (f"{statement.module}.{alias.name}")
                    )
                    self._bind(name, "import", line, f"`{name}` is imported from {origin}")
            elif isinstance(statement, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
                targets = (
                    [statement.target]
                    if isinstance(statement, (ast.For, ast.AsyncFor))
                    else [i.optional_vars for i in statement.items if i.optional_vars]
                )
                for target in targets:
                    for name in _bound_names(target):
                        self._bind(name, "assign", line, f"`{name}` is bound by a loop or with")
            elif isinstance(statement, ast.Delete):
                for target in statement.targets:
                    for name in _bound_names(target):
                        self._bind(name, "assign", line, f"`{name}` is deleted")
            for name in _walrus_names(statement):
                self._bind(name, "assign", line, f"`{name}` is set with :=")
            for child in _nested_bodies(statement):
                self._module_bindings(child)

    def _bind(self, name: str, kind: str, line: int, text: str) -> None:
        if name in self.answer_names:
            self.bindings.setdefault(name, []).append((kind, self._cell, line, text))

    # -- findings ---------------------------------------------------------------------------------

    def _flag(self, line: int, text: str) -> None:
        finding = Finding(self._cell, line, text)
        if finding not in self.notebook:
            self.notebook.append(finding)

    def _exercise(self, exercise_id: str, line: int, text: str) -> None:
        found = self.per_exercise.setdefault(exercise_id, [])
        finding = Finding(self._cell, line, text)
        if finding not in found:
            found.append(finding)

    def report(self) -> SourceReport:
        undefined: dict[str, list[str]] = {}
        for exercise in self.exercises:
            for name in exercise.answers:
                bindings = self.bindings.get(name, [])
                if not bindings:
                    undefined.setdefault(exercise.id, []).append(name)
                    continue
                for kind, cell, line, text in bindings:
                    if kind == "def" or (kind == "assign" and exercise.kind == "value"):
                        continue
                    why = f"{text}; define it in the notebook with def (or class)"
                    self.per_exercise.setdefault(exercise.id, []).append(Finding(cell, line, why))
        return SourceReport(self.notebook, self.per_exercise, undefined)


_UNRESOLVED: Any = object()


def _resolve(dotted: str) -> Any:
    """The object ``dotted`` names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:end]))
        except Exception:  # not a module (or one that fails to import): try a shorter prefix
            continue
        try:
            for part in parts[end:]:
                target = getattr(target, part)
        except Exception:
            return _UNRESOLVED
        return target
    return _UNRESOLVED


def _qualified_name(value: Any) -> str:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return ""
    return f"{module}.{qualname}"


def _is_module(value: Any) -> bool:
    return type(value).__name__ == "module"


def _literal(node: ast.AST, allow: tuple[type, ...] = (str,)) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, allow):
        return node.value
    return None


def _is_get_ipython(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get_ipython"
    )


def _bound_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound_names(element)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


def _walrus_names(node: ast.AST) -> list[str]:
    """Names bound with ``:=`` at module level (not inside a def, class or lambda)."""
    names = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(child, ast.stmt):
            continue  # nested statements are visited by _module_bindings itself
        if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
            names.append(child.target.id)
        names.extend(_walrus_names(child))
    return names


def _nested_bodies(statement: ast.stmt) -> list[list[ast.stmt]]:
    """Statement lists still at module level: if/else, loops, with, try (not def or class)."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return []
    bodies = []
    for name in ("body", "orelse", "finalbody"):
        value = getattr(statement, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            bodies.append(value)
    for handler in getattr(statement, "handlers", []) or []:
        bodies.append(handler.body)
    for case in getattr(statement, "cases", []) or []:
        bodies.append(case.body)
    return bodies


def _source_text(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:59] + "…"
