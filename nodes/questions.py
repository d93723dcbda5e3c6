"""The questions each gate asks. The node before a gate stores one in `state.pending`."""
from __future__ import annotations

import time
from pathlib import Path

from nodes.report import slower_than_eager
from session_state import EnvInfo, Params, Pending, RunRecord

def _detected_note(env: EnvInfo) -> str:
    if not env.from_cache:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(env.detected_at)) if env.detected_at else "earlier"
    return f" (cached: detected {when}; redone when torch, triton or Python change)"


def confirm_params(env: EnvInfo, params: Params) -> Pending:
    verify_note = (
        f"kernels are verified on {env.device_name} ({env.triton_mode} Triton)"
        if env.device_kind != "cpu"
        else "no GPU here: kernels are verified in the Triton interpreter on shrunk shapes, speed is not measured"
    )
    llm = f"{env.llm} ({env.model})" if env.model else env.llm
    if env.llm == "embedded":
        llm = ("embedded (no model: the built-in Triton lowering; its tunables are the same for every "
               "arch, so an arch= edit does not change its code)")
    detail = (
        f"framework={params.framework} backend={params.backend} arch={params.arch} dsl={params.dsl}\n"
        f"environment: {env.device_name}, torch {env.torch_version}, triton {env.triton_version}"
        f"{_detected_note(env)}\n"
        f"generator: {llm}\n{verify_note}"
    )
    return Pending(gate="confirm_params", question="Use these parameters?",
                  options=["yes", "no", "key=value ..."], default="yes", detail=detail)


def confirm_task(task_path: str, check: dict, notes: list[str] | None = None) -> Pending:
    checks = "validated: imports, runs, deterministic, finite outputs"
    if check.get("outputs"):
        checks += f"; outputs {', '.join(check['outputs'])}"
        if check.get("shrunk"):  # the CPU interpreter ran smaller sizes than the task's own
            sizes = ", ".join(f"{name} {a}->{b}" for name, (a, b) in check["shrunk"].items())
            checks += f" at sizes shrunk for the CPU interpreter ({sizes}; the task keeps its own sizes)"
    footprint = check.get("footprint") or {}
    if footprint.get("total_bytes") and not check.get("shrunk"):
        checks += (f"; memory: {footprint['total_bytes'] / 1e9:.2f} GB of inputs, parameters and outputs "
                   f"(about {footprint['needed_bytes'] / 1e9:.1f} GB needed to judge it)")
    notes = list(notes or []) + list(check.get("notes") or [])  # e.g. an output that is all zeros
    if notes:
        checks += "\nnotes: " + "; ".join(notes)
    return Pending(gate="confirm_task", question=f"Use this task ({Path(task_path).name})? {checks}",
                   options=["yes", "no"], default="yes", detail=Path(task_path).read_text(),
                   detail_kind="python")


ANSWER_KEY = {"shapes": "shapes", "inputs": "shapes", "init_args": "init_args"}


def task_needs(needs, notes: list[str]) -> Pending:
    """What the source file does not determine: the answer gives it as key=value."""
    asks = sorted({ANSWER_KEY[n.kind] for n in needs})
    example = " ".join({"shapes": "shapes='(8, 512)'", "init_args": "init_args='[512]'"}[k] for k in asks)
    detail = "\n".join([n.question for n in needs] + [f"note: {n}" for n in notes])
    return Pending(gate="confirm_task", question=f"The source does not determine everything: answer {example}"
                                                 " (dtype=fp16 optional), or no",
                   options=[example, "no"], default="", detail=detail, asks=asks)


def choose_workflow(default: str | None, workflows: list[str], env: EnvInfo | None = None,
                    search_options: dict | None = None) -> Pending:
    """The workflows, each with what it will do here (said before the user picks)."""
    chosen = default if default in workflows else workflows[0]
    from nodes.workflows import describe

    return Pending(gate="choose_workflow", question="Which workflow should generate the kernel?",
                   options=list(workflows), default=chosen,
                   detail="\n".join(f"{name}: {describe(name, env, search_options or {})}" for name in workflows))


def review_result(run: RunRecord, llm: str = "") -> Pending:
    summary = (run.verdict or {}).get("summary", "")
    code = Path(run.code_path).read_text() if run.code_path else ""
    regenerate = ("regenerate: the embedded generator starts from another point of its tunable space"
                  if llm == "embedded" else "regenerate: choose a workflow and generate again")
    slower = slower_than_eager(run.verdict or {})
    warning = f"\nNote: it is slower than eager ({slower:.2f}x): the code it replaces is faster here." if slower else ""
    return Pending(gate="review_result",
                   question=f"{run.workflow} run {run.index} succeeded: {summary}{warning}\nAccept this kernel? ({regenerate})",
                   options=["accept", "regenerate"], default="accept", detail=code,
                   detail_kind="python")
