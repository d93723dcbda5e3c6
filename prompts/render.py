"""Render prompt templates (the `.md` files beside this module).

Templates use `string.Template` placeholders (`${name}`): kernel code is full of braces, so
`str.format` would need every literal brace doubled, while `$` almost never appears in it.
A placeholder without a value is an error at render time, not a prompt with a hole in it.

This module knows templates, not generators: it takes the operator context as any pydantic model
(`generators.base.GenContext`) or mapping, so the layers below `generators/` stay import-free.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any

PROMPTS_DIR = Path(__file__).resolve().parent

# Hardware notes by file name; an arch string matches the first key it contains
# ("ascend910b4" -> ascend910b, "nvidia-h100-sxm" -> h100).
HARDWARE_NOTES = ("ascend910b", "a100", "h100", "h200")


class PromptError(ValueError):
    """A template is missing, malformed, or rendered without a value it needs."""


def template_names() -> list[str]:
    """Every template, as the names `render` takes (e.g. "tasks/fix")."""
    return sorted(p.relative_to(PROMPTS_DIR).with_suffix("").as_posix() for p in PROMPTS_DIR.rglob("*.md"))


@lru_cache(maxsize=None)
def load(name: str) -> str:
    path = PROMPTS_DIR / f"{name.removesuffix('.md')}.md"
    if not path.is_file():
        raise PromptError(f"no prompt template {name!r} in {PROMPTS_DIR.name}/")
    return path.read_text(encoding="utf-8")


def render(name: str, ctx: Any = None, **extras: object) -> str:
    """Fill template `name` from the context's fields and `extras` (extras win)."""
    values = {**_fields(ctx), **{k: "" if v is None else str(v) for k, v in extras.items()}}
    try:
        return Template(load(name)).substitute(values)
    except KeyError as exc:
        raise PromptError(f"prompt {name!r} needs a value for ${{{exc.args[0]}}}") from None
    except ValueError as exc:  # a stray "$" in the template
        raise PromptError(f"prompt {name!r} is malformed: {exc}") from None


def fenced(text: str, lang: str = "python") -> str:
    """A fenced block that survives fences inside `text` (a longer fence than any it contains)."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def arch_notes_name(arch: str) -> str | None:
    key = re.sub(r"[^a-z0-9]", "", arch.lower())
    return next((f"hardware/{name}" for name in HARDWARE_NOTES if name in key), None)


def hardware_notes(arch: str) -> str:
    name = arch_notes_name(arch)
    return render(name).strip() if name else render("hardware/unknown", arch=arch).strip()


def system_prompt(ctx: Any) -> str:
    """The kernel writer's system prompt: DSL guidance, contract, hardware, device notes."""
    fields = _fields(ctx)
    dsl, arch = fields.get("dsl", "triton_cuda"), fields.get("arch", "")
    if not (PROMPTS_DIR / "system" / f"{dsl}.md").is_file():
        known = sorted(p.stem for p in (PROMPTS_DIR / "system").glob("triton_*.md"))
        raise PromptError(f"no system prompt for DSL {dsl!r} (known: {', '.join(known)})")
    # Without a GPU the harness runs the kernel in Triton's interpreter: tell the model.
    on_cpu = fields.get("device", "cpu").startswith("cpu")
    return render(
        f"system/{dsl}",
        ctx,
        contract=render("contract").strip(),
        hardware=hardware_notes(arch),
        device_note=render("parts/interpreter", ctx) if on_cpu else "",
    )


def optimize_directions() -> list[str]:
    """Ideas `optimize` rotates through (data, not a template: one per "- " line)."""
    lines = (PROMPTS_DIR / "optimize_directions.txt").read_text(encoding="utf-8").splitlines()
    return [line[2:].strip() for line in lines if line.startswith("- ")]


def _fields(ctx: Any) -> dict[str, str]:
    if ctx is None:
        return {}
    if hasattr(ctx, "model_dump"):
        ctx = ctx.model_dump()
    if not isinstance(ctx, Mapping):
        raise PromptError(f"cannot render from a {type(ctx).__name__}: pass a pydantic model or a mapping")
    return {k: "" if v is None else str(v) for k, v in ctx.items()}
