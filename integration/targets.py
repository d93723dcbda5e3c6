"""Which class or function in a file does the request mean? ("Optimize the layernorm in model.py")

A candidate is a top-level nn.Module subclass or function. The request's words are compared with
each candidate's name (split at CamelCase and underscores) and docstring: an exact name match
beats a partial one, which beats a docstring mention. A tie at the top, or no match at all, is an
ExtractionError listing the candidates, so the user can answer with --target.
"""
from __future__ import annotations

import re

from integration.errors import ExtractionError
from integration.source import Definition, SourceFile

# Words of a request that never name an operator.
_STOPWORDS = {
    "a", "an", "the", "in", "of", "on", "for", "to", "and", "with", "using", "use", "from", "my",
    "this", "that", "file", "code", "please", "optimize", "optimise", "generate", "write", "make",
    "faster", "speed", "up", "kernel", "kernels", "triton", "cuda", "gpu", "op", "operator",
    "implement", "replace", "fuse", "fused", "function", "module", "class", "layer", "into",
    "python", "torch", "pytorch", "h100", "a100", "h200", "fp32", "fp16", "bf16", "float32",
    "float16", "bfloat16", "model",
}

EXACT, PARTIAL, DOCSTRING = 3, 2, 1


def _words(text: str) -> list[str]:
    """Lower-case words: CamelCase and snake_case are split, file paths are dropped."""
    text = re.sub(r"\S*[/\\]\S*|\S+\.py\b", " ", text)  # paths name files, not operators
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _request_terms(request: str) -> set[str]:
    """Single words and joined runs of two or three ("layer norm" → "layernorm")."""
    words = _words(request)
    terms = {w for w in words if w not in _STOPWORDS and len(w) >= 3}
    for size in (2, 3):
        for i in range(len(words) - size + 1):
            run = words[i : i + size]
            if any(w not in _STOPWORDS or w == "layer" for w in run):
                terms.add("".join(run))
    return terms


def _score(definition: Definition, terms: set[str]) -> int:
    name_words = _words(definition.name)
    joined = "".join(name_words)
    if joined in terms:
        return EXACT
    meaningful = [w for w in name_words if w not in _STOPWORDS]
    if any(term in joined for term in terms if len(term) >= 4) or any(w in terms for w in meaningful):
        return PARTIAL
    doc_words = set(_words(definition.docstring))
    doc_words |= {a + b for a, b in zip(_words(definition.docstring), _words(definition.docstring)[1:])}
    if terms & doc_words:
        return DOCSTRING
    return 0


def candidates(source: SourceFile) -> list[Definition]:
    """Definitions that can be a target: nn.Module subclasses and functions (not private ones)."""
    return [
        d for d in source.definitions()
        if (d.kind == "function" or d.is_module) and not d.name.startswith("_")
    ]


def _describe(definitions: list[Definition]) -> str:
    return ", ".join(f"{d.name} ({'nn.Module' if d.kind == 'class' else 'function'})" for d in definitions)


def find_target(source: SourceFile, request: str, target: str | None = None) -> Definition:
    """The named target, or the one the request's words point to."""
    if target is not None:
        return _named_target(source, target)
    options = candidates(source)
    if not options:
        raise ExtractionError(f"{source.path.name} defines no nn.Module subclass or function to optimize")
    terms = _request_terms(request)
    scored = sorted(((_score(d, terms), d) for d in options), key=lambda pair: -pair[0])
    best = scored[0][0]
    if best == 0:
        raise ExtractionError(
            f"no class or function in {source.path.name} matches the request; "
            f"candidates: {_describe(options)} (choose one with --target)"
        )
    top = [d for score, d in scored if score == best]
    if len(top) > 1:
        raise ExtractionError(
            f"the request matches several targets in {source.path.name}: {_describe(top)} "
            f"(choose one with --target)"
        )
    return top[0]


def _named_target(source: SourceFile, target: str) -> Definition:
    definitions = {d.name: d for d in source.definitions()}
    found = definitions.get(target)
    if found is None:
        if target in source.top_level_names():
            raise ExtractionError(
                f"target {target!r} in {source.path.name} is not a class or function "
                f"(an nn.Module subclass or a function is needed)"
            )
        raise ExtractionError(
            f"target {target!r} not found in {source.path.name}; "
            f"candidates: {_describe(candidates(source)) or 'none'}"
        )
    if found.kind == "class" and not found.is_module:
        raise ExtractionError(
            f"target {target!r} in {source.path.name} is a class but not an nn.Module subclass"
        )
    return found
