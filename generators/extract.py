"""Pull a Python module out of a model's reply.

Models wrap code in fences (with or without a language tag), split it over several blocks, put
prose around it, "think" aloud first, or send bare code. The rules, in order:

1. Drop reasoning sections (`<think>...</think>`) that open models emit inside the content.
2. Fenced blocks: ignore blocks tagged as another language (bash, json, text ...). Of the blocks
   that define the required class, take the last one (models often send a corrected version
   after a first draft). If that block uses names that only other blocks define (a kernel in one
   block, `ModelNew` in the next), join the blocks it needs, in reply order.
3. No fences: take the lines from the first one that looks like code, dropping trailing prose
   until the text parses.

The result must parse and define the required names; otherwise the attempt failed, and the
error says why, in words a fixer prompt can pass back to the model.
"""
from __future__ import annotations

import ast
import builtins
import re
import textwrap
from dataclasses import dataclass

from harness.api import parse_python

_THINK = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL | re.IGNORECASE)
# An opening fence at line start, optional tag, then everything up to a closing fence at line
# start or the end of the reply (a reply cut off at max_tokens has no closing fence).
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<tag>[\w+\-.]*)[^\n]*\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.DOTALL | re.MULTILINE,
)
_PYTHON_TAGS = {"", "python", "py", "python3", "triton", "py3"}
_CODE_START = re.compile(r"^(import |from \w|@|def |class |#!|# )")
_BUILTINS = set(dir(builtins)) | {"__name__", "__file__"}


@dataclass(frozen=True)
class Extracted:
    code: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is not None


def extract_model_new(reply: str) -> Extracted:
    """The kernel module: must define `class ModelNew`."""
    return extract_code(reply, classes=("ModelNew",))


def extract_task(reply: str) -> Extracted:
    """A KernelBench task file: `class Model`, `get_inputs`, `get_init_inputs`."""
    return extract_code(reply, classes=("Model",), functions=("get_inputs", "get_init_inputs"))


def extract_code(reply: str, classes: tuple[str, ...], functions: tuple[str, ...] = ()) -> Extracted:
    required = (*classes, *functions)
    what = _describe(classes, functions)
    text = _THINK.sub("", reply or "").strip()
    if not text:
        return Extracted(None, "the reply was empty")

    blocks = _python_blocks(text)
    if blocks:
        code = _pick_blocks(blocks, anchor=required[0])
    elif _mentions_any(text, required):
        code = _unfenced_code(text)
    else:
        code = None
    if code is None:
        return Extracted(None, f"the reply had no code defining {what}")

    try:
        tree = parse_python(code)  # proposals are extracted in parallel threads
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        where = f"line {exc.lineno}" + (f" ({line[:80]})" if line else "")
        return Extracted(None, f"the reply's code has a syntax error at {where}: {exc.msg}")
    defined = _top_level_definitions(tree)
    missing = [name for name in classes if defined.get(name) != "class"]
    missing += [name for name in functions if defined.get(name) != "function"]
    if missing:
        return Extracted(None, f"the reply's code does not define {', '.join(missing)} (needs {what})")
    return Extracted(code.strip() + "\n")


def _describe(classes: tuple[str, ...], functions: tuple[str, ...]) -> str:
    parts = [f"class {c}" for c in classes] + [f"{f}()" for f in functions]
    return ", ".join(parts)


def _python_blocks(text: str) -> list[str]:
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group("tag").lower() in _PYTHON_TAGS and match.group("body").strip():
            # Fences inside list items come indented, with the code indented alike.
            blocks.append(textwrap.dedent(match.group("body")))
    return blocks


def _mentions_any(text: str, names: tuple[str, ...]) -> bool:
    return any(re.search(rf"\b(class|def)\s+{re.escape(n)}\b", text) for n in names)


def _pick_blocks(blocks: list[str], anchor: str) -> str:
    """The block defining `anchor` (the last such), plus earlier/later blocks it depends on."""
    defines_anchor = [i for i, b in enumerate(blocks) if re.search(rf"^class\s+{anchor}\b|^def\s+{anchor}\b", b, re.M)]
    if not defines_anchor:
        # Nothing defines it in one piece; joining everything is the best remaining guess, and
        # validation will report what is missing.
        return "\n\n".join(blocks)
    chosen = defines_anchor[-1]
    parsed = [_safe_parse(b) for b in blocks]
    if parsed[chosen] is None:
        return blocks[chosen]  # let validation report the syntax error of the code that matters

    provides = {i: set(_top_level_definitions(t)) for i, t in enumerate(parsed) if t is not None and i != chosen}
    needed = {chosen}
    frontier = [chosen]
    while frontier:
        i = frontier.pop()
        missing = _free_names(parsed[i]) - set().union(*(set(_top_level_definitions(parsed[j])) for j in needed))
        for j, names in provides.items():
            if j not in needed and names & missing:
                needed.add(j)
                frontier.append(j)
    return "\n\n".join(blocks[i] for i in sorted(needed))


def _unfenced_code(text: str) -> str | None:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return None
    # Trailing prose ("This kernel computes ...") does not parse; drop it line by line.
    end = len(lines)
    while end > start:
        candidate = "\n".join(lines[start:end])
        if _safe_parse(candidate) is not None:
            return candidate
        end -= 1
    return "\n".join(lines[start:])  # unparseable either way: report the syntax error


def _safe_parse(code: str) -> ast.Module | None:
    try:
        return parse_python(code)
    except SyntaxError:
        return None


def _top_level_definitions(tree: ast.Module) -> dict[str, str]:
    """Names bound at module level, with what binds them (class, function or other)."""
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = "class"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = "function"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.setdefault((alias.asname or alias.name).split(".")[0], "import")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.setdefault(sub.id, "value")
    return names


def _free_names(tree: ast.Module) -> set[str]:
    """Names a block reads but does not define anywhere in itself (approximate, which is enough
    to decide which other blocks it needs)."""
    loaded, bound = set(), set(_top_level_definitions(tree))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return loaded - bound - _BUILTINS
