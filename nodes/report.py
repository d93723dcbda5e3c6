"""Phase 6: report.md — parameters, environment, task, every run, the result and file changes."""
from __future__ import annotations

from pathlib import Path

from session_state import RunRecord, SessionState, log
from integration.integrate import report_section


# timings["contended"]: other work seen on the GPU while timing, none seen, or not looked for
_CONTENTION_LINES = {True: "- timed on a GPU shared with other processes: figures may be off (see flag)",
                     False: "- timed with no other process working on the GPU",
                     None: "- not checked for other processes on the GPU while timing (see flag)"}


def slower_than_eager(verdict: dict) -> float | None:
    """The speedup over eager when the accepted kernel measured slower than the PyTorch code it
    would replace, else None: accepted means correct, not faster (a direct 3-D transposed
    convolution was accepted at 0.32x eager), and the user should hear it before integrating."""
    speedup = verdict.get("speedup_vs_eager")
    return speedup if speedup is not None and speedup < 1.0 else None


def _timing_lines(verdict: dict) -> list[str]:
    timings = verdict.get("timings")
    if not timings:
        return ["- speed: not measured (verified in the Triton interpreter)"]
    lines = []
    for name in ("candidate", "eager", "compile"):
        t = timings.get(name)
        if t and t.get("median_ms") is not None:
            lines.append(f"- {name}: {t['median_ms']:.4f} ms median (IQR {t.get('iqr_ms', 0):.4f} ms)")
    for key, label in (("speedup_vs_eager", "eager"), ("speedup_vs_compile", "torch.compile")):
        if verdict.get(key):
            lines.append(f"- speedup vs {label}: {verdict[key]:.2f}x")
    if slower_than_eager(verdict):
        lines.append(f"- **slower than eager ({verdict['speedup_vs_eager']:.2f}x)**: PyTorch's own code is faster on "
                     "this device; `akg-op rollback SESSION_ID` restores every file the session wrote")
    roofline = verdict.get("roofline") or {}
    if roofline.get("achieved_gbps"):
        share = f" ({roofline['bandwidth_fraction']:.0%} of peak)" if roofline.get("bandwidth_fraction") else ""
        lines.append(f"- achieved {roofline['achieved_gbps']:.0f} GB/s{share}")
    if roofline.get("compute_fraction"):
        lines.append(f"- achieved {roofline['achieved_tflops']:.1f} TFLOP/s ({roofline['compute_fraction']:.0%} of "
                     f"the {roofline['peak_tflops']:g} TFLOP/s peak)")
    if "contended" in timings:
        lines.append(_CONTENTION_LINES[timings["contended"]])
    memory = verdict.get("memory") or {}
    if memory.get("peak_device_bytes"):
        footprint = (memory.get("footprint") or {}).get("total_bytes") or 0
        lines.append(f"- memory: task footprint {footprint / 1e9:.2f} GB, judge's peak device memory "
                     f"{memory['peak_device_bytes'] / 1e9:.2f} GB")
    for flag in verdict.get("flags") or []:
        lines.append(f"- flag: {flag}")
    return lines


def _run_section(run: RunRecord) -> str:
    lines = [f"### {run.workflow} run {run.index}: {run.status}", "",
             f"- directory: `{run.dir}`", f"- iterations: {run.iterations}"]
    if run.error:
        lines.append(f"- failure: {run.error}")
    for a in run.attempts:
        first = a.summary.splitlines()[0] if a.summary else ""
        lines.append(f"- iteration {a.iteration} ({a.action}): **{a.status}** {first}")
    usage = run.llm_usage or {}
    if usage.get("calls"):
        lines.append(f"- LLM: {usage['calls']} call(s), {usage['prompt_tokens']} prompt + "
                     f"{usage['completion_tokens']} completion tokens, {usage['latency_s']} s "
                     f"({', '.join(usage.get('models', []))})")
    snippet = Path(run.dir) / "report_snippet.md"
    if snippet.exists():  # the search workflows' table, lineage and best-speedup plot
        lines += ["", snippet.read_text().rstrip()]
    if run.verdict:
        v = run.verdict
        lines.append(f"- final verdict: {v.get('status')} — max abs err {v.get('max_abs_err')}, "
                     f"max rel err {v.get('max_rel_err')}, Triton launches {v.get('triton_launches')}")
        lines.extend(_timing_lines(v))
    return "\n".join(lines)


def render_report(state: SessionState) -> str:
    p, env = state.params, state.env
    succeeded = state.accepted_code_path is not None
    title = "succeeded" if succeeded else ("failed" if state.runs else state.status)
    out = [f"# akg-op report: {state.op_name or 'session'} ({title})", "",
           f"- session: `{state.session_id}`", f"- request: {state.settings.request or '(task file)'}",
           f"- created: {state.created}", ""]
    if p:
        out += ["## Parameters", "", f"framework={p.framework} backend={p.backend} arch={p.arch} dsl={p.dsl}", ""]
    if env:
        out += ["## Environment", "",
                f"- device: {env.device_name} ({env.device_kind}, Triton {env.triton_mode})",
                f"- torch {env.torch_version}, triton {env.triton_version}, python {env.python_version}",
                f"- generator: {env.llm}{f' ({env.model})' if env.model else ''}", ""]
    if state.task_path:
        out += ["## Task", "", f"`{state.task_path}`", "", "```python", Path(state.task_path).read_text().rstrip(),
                "```", ""]
    out += ["## Runs", ""] + [_run_section(r) + "\n" for r in state.runs]
    if not state.runs:
        out += ["(no workflow ran)", ""]
    out += ["## Result", ""]
    if succeeded:
        out.append(f"Accepted kernel: `{state.kernel_path or state.accepted_code_path}` "
                   f"(from `{state.accepted_code_path}`)")
    else:
        failed = next((r for r in reversed(state.runs) if r.status == "failed"), None)
        out.append(f"No kernel accepted. {failed.error if failed else ''}".strip())
    out += ["", report_section([c.model_dump() for c in state.changes], state.session_id)]
    return "\n".join(out) + "\n"


def report(state: SessionState) -> dict:
    if state.fusion is not None:
        from nodes.fusion import fusion_report

        return fusion_report(state)
    directory = Path(state.session_dir)
    path = directory / "report.md"
    path.write_text(render_report(state))
    status = "done" if state.accepted_code_path else "failed"
    return {"report_path": str(path), "status": status, "phase": "report", "pending": None,
            "history": log(state, f"report: {path}")}
