"""The questions each gate asks. The node before a gate stores one in `state.pending`."""
from __future__ import annotations

from pathlib import Path

from graph.state import EnvInfo, Params, Pending, RunRecord

def confirm_params(env: EnvInfo, params: Params) -> Pending:
    verify_note = (
        f"kernels are verified on {env.device_name} ({env.triton_mode} Triton)"
        if env.device_kind != "cpu"
        else "no GPU here: kernels are verified in the Triton interpreter on shrunk shapes, speed is not measured"
    )
    llm = f"{env.llm} ({env.model})" if env.model else env.llm
    if env.llm == "embedded":
        llm = "embedded (no model: the built-in Triton lowering)"
    detail = (
        f"framework={params.framework} backend={params.backend} arch={params.arch} dsl={params.dsl}\n"
        f"environment: {env.device_name}, torch {env.torch_version}, triton {env.triton_version}"
        f"{' (cached)' if env.from_cache else ''}\n"
        f"generator: {llm}\n{verify_note}"
    )
    return Pending(gate="confirm_params", question="Use these parameters?",
                  options=["yes", "no", "key=value ..."], default="yes", detail=detail)


def confirm_task(task_path: str, check: dict) -> Pending:
    checks = "validated: imports, runs, deterministic, finite outputs"
    if check.get("outputs"):
        checks += f"; outputs {check['outputs']}"
    return Pending(gate="confirm_task", question=f"Use this task ({Path(task_path).name})? {checks}",
                   options=["yes", "no"], default="yes", detail=Path(task_path).read_text(),
                   detail_kind="python")


def choose_workflow(default: str | None, workflows: list[str]) -> Pending:
    chosen = default if default in workflows else workflows[0]
    from nodes.workflows import DESCRIPTIONS

    return Pending(gate="choose_workflow", question="Which workflow should generate the kernel?",
                   options=list(workflows), default=chosen,
                   detail="\n".join(f"{name}: {DESCRIPTIONS.get(name, '')}" for name in workflows))


def review_result(run: RunRecord) -> Pending:
    summary = (run.verdict or {}).get("summary", "")
    code = Path(run.code_path).read_text() if run.code_path else ""
    return Pending(gate="review_result",
                   question=f"{run.workflow} run {run.index} succeeded: {summary}\nAccept this kernel?",
                   options=["accept", "regenerate"], default="accept", detail=code,
                   detail_kind="python")
