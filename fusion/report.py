"""report.md of a fusion session: the analysis, every opportunity (picked or not, realized or
failed, with its runs and speedups), the whole-model check and the file changes."""
from __future__ import annotations

from fusion.analysis import Analysis, table
from session_state import SessionState
from integration.integrate import report_section


def _speed(run) -> str:
    verdict = run.verdict or {}
    if verdict.get("speedup_vs_eager"):
        text = f"{verdict['speedup_vs_eager']:.2f}x vs eager"
        if verdict.get("speedup_vs_compile"):
            text += f", {verdict['speedup_vs_compile']:.2f}x vs torch.compile"
        return text
    return "verified in the Triton interpreter (no speed measured)" if run.status == "success" else "—"


def render_fusion_report(state: SessionState, analysis: Analysis) -> str:
    from nodes.report import _run_section

    fusion = state.fusion
    results = {r.name: r for r in fusion.results}
    realized = [r for r in fusion.results if r.status == "realized"]
    failed = [r for r in fusion.results if r.status == "failed"]
    title = f"{len(realized)} of {len(fusion.picked)} picked fusions realized"
    p, env = state.params, state.env
    out = [f"# akg-op fusion report: {analysis.model} ({title})", "",
           f"- session: `{state.session_id}`", f"- request: {state.settings.request}",
           f"- model: {analysis.description}", f"- analysis: `{fusion.analysis_path}` (and fusion_analysis.md)"]
    if p:
        out.append(f"- parameters: framework={p.framework} backend={p.backend} arch={p.arch} dsl={p.dsl}")
    if env:
        out.append(f"- device: {env.device_name} ({env.device_kind}, Triton {env.triton_mode}); generator {env.llm}")
    if analysis.capture_error:
        out.append(f"- capture stopped early: {analysis.capture_error}")
    out += ["", "## Opportunities", "", table(analysis), "", "| # | opportunity | picked | result | speed |",
            "|---|---|---|---|---|"]
    for opp in analysis.opportunities:
        result = results.get(opp.name)
        if result is None:
            out.append(f"| {opp.rank} | {opp.name} | no | — | — |")
            continue
        runs = [r for r in result.runs if r.status == "success"]
        status = result.status if result.status != "failed" else f"failed: {result.error}"
        out.append(f"| {opp.rank} | {opp.name} | yes | {status} | {_speed(runs[-1]) if runs else '—'} |")
    if failed:
        out += ["", "Failed: " + "; ".join(f"{r.name} ({r.error})" for r in failed)
                + ". The other opportunities went on without them."]
    out += ["", "## Whole model", ""]
    check = fusion.model_check or {}
    out.append(f"- {'matches the original' if check.get('ok') else 'NOT verified'}: {check.get('message', 'not run')}")
    times = check.get("timings") or {}
    if times.get("eager_ms"):
        line = f"- forward ({times.get('model', '')}): eager {times['eager_ms']} ms, fused {times.get('fused_ms')} ms"
        if times.get("compile_ms"):
            line += f", torch.compile {times['compile_ms']} ms"
        out.append(line + f" → {times['eager_ms'] / times['fused_ms']:.2f}x vs eager" if times.get("fused_ms") else line)
    elif times.get("error"):
        out.append(f"- forward timing failed: {times['error']}")
    elif not (state.env and state.env.device_kind == "cuda"):
        out.append("- forward time: not measured (no GPU)")
    for line in check.get("swapped") or []:
        out.append(f"- swapped: {line}")
    for line in check.get("skipped") or []:
        out.append(f"- not swapped: {line}")
    if state.kernel_path:
        out.append(f"- integrated: `{state.kernel_path}`")
        if fusion.kind == "hf":
            out.append(f"- use: `from {analysis.model}_fused import apply_fusions; model = apply_fusions(model)`")
    out += ["", "## Realized kernels", ""]
    for result in fusion.results:
        out += [f"### {result.rank}. {result.name}: {result.status}", "",
                f"- task: `{result.task_path}`" if result.task_path else "- task: not written",
                f"- kernel: `{result.kernel_path}`" if result.kernel_path else f"- error: {result.error}", ""]
        out += [_run_section(run) + "\n" for run in result.runs]
    out += ["", report_section([c.model_dump() for c in state.changes], state.session_id)]
    return "\n".join(out) + "\n"
