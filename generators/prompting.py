"""The (system, user) prompt pair for each kind of generator call, rendered from `prompts/`.

Node code never concatenates prompt text: it hands the generator a context, and this module picks
the templates and fills them.
"""
from __future__ import annotations

from collections.abc import Sequence

from generators.base import CandidateInfo, GenContext
from generators.feedback import describe_performance
from prompts.render import fenced, optimize_directions, render, system_prompt

PromptPair = tuple[str, str]  # (system, user)

MAX_INSPIRATIONS = 3
MAX_HISTORY_LINES = 8  # older attempts matter less than the budget they would take


def generate_prompts(ctx: GenContext) -> PromptPair:
    user = render("tasks/generate", ctx, task_code_block=fenced(ctx.task_code))
    return system_prompt(ctx), user


def fix_prompts(ctx: GenContext, code: str, feedback: str, history: Sequence[str]) -> PromptPair:
    recent = list(history)[-MAX_HISTORY_LINES:]
    skipped = len(history) - len(recent)
    lines = ([f"- ({skipped} earlier attempts not shown)"] if skipped else []) + [f"- {h}" for h in recent]
    user = render(
        "tasks/fix",
        ctx,
        task_code_block=fenced(ctx.task_code),
        code_block=fenced(code),
        feedback_block=fenced(feedback or "(the verifier gave no details)", "text"),
        history="\n".join(lines) if lines else "- (none: this is the first fix)",
    )
    return system_prompt(ctx), user


def optimize_prompts(
    ctx: GenContext, parent: CandidateInfo, inspirations: Sequence[CandidateInfo], seed: int
) -> PromptPair:
    shown = [c for c in inspirations if c.id != parent.id][:MAX_INSPIRATIONS]
    blocks = [
        render(
            "parts/inspiration",
            candidate_id=c.id,
            performance=describe_performance(c.verdict),
            code_block=fenced(c.code),
        ).strip()
        for c in shown
    ]
    user = render(
        "tasks/optimize",
        ctx,
        task_code_block=fenced(ctx.task_code),
        parent_id=parent.id,
        parent_code_block=fenced(parent.code),
        parent_performance=describe_performance(parent.verdict),
        inspirations="\n\n".join(blocks) if blocks else "(none yet)",
        direction=optimize_direction(seed),
    )
    return system_prompt(ctx), user


def optimize_direction(seed: int) -> str:
    """Different seeds push different candidates towards different ideas."""
    directions = optimize_directions()
    return directions[seed % len(directions)]


def build_task_prompts(request: str, excerpt: str | None = None) -> PromptPair:
    if excerpt and excerpt.strip():
        source = render("parts/source_excerpt", excerpt_block=fenced(excerpt))
    else:
        source = render("parts/no_source")
    user = render("tasks/build_task", request=request.strip(), source_section=source.strip())
    return render("system/task_builder"), user


def probe_prompts() -> PromptPair:
    return "", render("tasks/probe").strip()
