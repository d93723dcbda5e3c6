"""Fusion mode on Qwen2 at 7B widths: analyse, realize the top fusions, time them.

    python bench/fusion_qwen2.py                 # on a GPU: real shapes, bf16
    python bench/fusion_qwen2.py --tiny          # on CPU: small model, Triton interpreter (a smoke test)

Runs one fusion session (`Analyze Qwen2 model for operator fusion opportunities and realize`,
every gate at its default: the top 3 opportunities), then prints markdown tables:
- the analysis (bytes saved per forward, estimated time saved at the device's bandwidth);
- per realized kernel: the fused region in eager PyTorch, the generated kernel, torch.compile of
  the region, at the shapes seen in the model (shrunk in --tiny mode);
- end to end: a Qwen2 with `--layers` layers at 7B widths (small widths in --tiny mode), eager vs
  `apply_fusions` vs torch.compile, and the fused model's logits against the original's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REQUEST = "Analyze Qwen2 model for operator fusion opportunities and realize"


def timer(device: str, reps: int):
    """Median milliseconds of fn(): CUDA events through triton's do_bench, wall clock on CPU."""
    import torch

    def measure(fn) -> float:
        if device == "cuda":
            import triton.testing

            return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))
        fn()
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        return sorted(samples)[len(samples) // 2]

    torch.set_grad_enabled(False)
    return measure


def compiled_or_none(model):
    import torch

    try:
        return torch.compile(model)
    except Exception as exc:  # no compiler toolchain (CPU-only machines)
        print(f"torch.compile unavailable: {exc}", file=sys.stderr)
        return None


def run_session(workdir: str):
    from service.sessions import Sessions
    from session_state import Settings

    sessions = Sessions()
    settings = Settings(request=REQUEST, workdir=workdir, auto_approve=True)
    session_id = sessions.create(settings)
    return sessions.advance(session_id, settings=settings, auto_approve=True)


def kernel_rows(state, device: str, tiny: bool, measure) -> list[str]:
    import torch

    from harness.task_loading import shrink_task
    from integration.checks import load_module_from_path, load_task_code

    rows = ["| kernel | shapes | eager ms | fused ms | torch.compile ms | fused vs eager | fused vs compile |",
            "|---|---|---|---|---|---|---|"]
    for result in state.fusion.results:
        if result.status != "realized":
            rows.append(f"| {result.name} | — | — | — | — | failed: {result.error} | |")
            continue
        task, _ = load_task_code(Path(result.task_path).read_text(), "cuda")
        if tiny:
            shrink_task(task)
        reference = task.Model().to(device).eval()
        kernel = load_module_from_path(result.kernel_path).ModelNew().to(device).eval()
        torch.manual_seed(0)
        inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in task.get_inputs()]
        try:
            torch.testing.assert_close(kernel(*inputs), reference(*inputs), rtol=2e-2, atol=2e-2)
            agrees = ""
        except AssertionError as exc:
            agrees = f" (outputs differ: {str(exc).splitlines()[0]})"
        compiled = compiled_or_none(reference)
        eager_ms = measure(lambda: reference(*inputs))
        fused_ms = measure(lambda: kernel(*inputs))
        try:
            compile_ms = measure(lambda: compiled(*inputs)) if compiled is not None else None
        except Exception as exc:
            print(f"torch.compile failed for {result.name}: {str(exc).splitlines()[0]}", file=sys.stderr)
            compile_ms = None
        shapes = "; ".join("x".join(map(str, x.shape)) for x in inputs if isinstance(x, torch.Tensor))
        rows.append(f"| {result.name}{agrees} | {shapes} {inputs[0].dtype} | {eager_ms:.4f} | {fused_ms:.4f} | "
                    f"{'%.4f' % compile_ms if compile_ms else 'n/a'} | {eager_ms / fused_ms:.2f}x | "
                    f"{'%.2fx' % (compile_ms / fused_ms) if compile_ms else 'n/a'} |")
    return rows


def end_to_end_rows(state, device: str, tiny: bool, layers: int, measure) -> list[str]:
    import torch

    from fusion import models
    from fusion.analysis import Analysis
    from fusion.checks import SMALL, compare_model_outputs
    from integration.checks import load_module_from_path

    analysis = Analysis.model_validate_json(Path(state.fusion.analysis_path).read_text())
    fused_path = Path(state.fusion.root_dir) / "qwen2_fused.py"
    if not fused_path.exists():
        return [f"(no qwen2_fused.py: {(state.fusion.model_check or {}).get('message', 'nothing integrated')})"]
    overrides = {**SMALL["qwen2"], "num_hidden_layers": layers} if tiny else None
    config = models.hf_config("qwen2", layers=None if tiny else layers, overrides=overrides)
    batch, tokens = (2, 16) if tiny else tuple(analysis.inputs[0].shape)
    dtype = analysis.dtype
    with torch.device(device):  # random init on the device: seconds, not minutes, at 7B widths
        torch.manual_seed(0)
        original = models.build_hf("qwen2", config, dtype)
        fused = models.build_hf("qwen2", config, dtype)
    fused.load_state_dict(original.state_dict())
    load_module_from_path(str(fused_path)).apply_fusions(fused)
    ids = torch.randint(0, config.vocab_size, (batch, tokens), device=device)
    with torch.no_grad():
        expected, actual = original(ids).logits, fused(ids).logits
        exact = None
        if expected.dtype != torch.float32:  # the same weights in float32: what both precisions approximate
            import copy
            reference32 = copy.deepcopy(original).float()
            exact = reference32(ids).logits.float()
            del reference32
    # the product's own end-to-end criterion (fusion.checks): in bf16 the fused model must be about
    # as close to the float32 model as eager is
    check = compare_model_outputs(expected, actual, exact)
    diff, same = check.get("max_abs_diff", float("nan")), check["ok"]
    if exact is not None:
        diff_note = f"; vs float32: fused {check['fused_err_vs_fp32']:.3g}, eager {check['eager_err_vs_fp32']:.3g}"
    else:
        diff_note = ""
    compiled = compiled_or_none(original)
    eager_ms = measure(lambda: original(ids))
    fused_ms = measure(lambda: fused(ids))
    try:
        compile_ms = measure(lambda: compiled(ids)) if compiled is not None else None
    except Exception as exc:
        print(f"torch.compile failed end to end: {str(exc).splitlines()[0]}", file=sys.stderr)
        compile_ms = None
    swapped = sorted({type(m).__name__ for m in fused.modules() if "forward" in vars(m)})
    width = f"hidden {config.hidden_size}, intermediate {config.intermediate_size}, {config.num_hidden_layers} layers"
    return ["| model | tokens | dtype | eager ms | fused ms | torch.compile ms | fused vs eager | logits |",
            "|---|---|---|---|---|---|---|---|",
            f"| Qwen2 ({width}; swapped {', '.join(swapped)}) | {batch}x{tokens} | {dtype} | {eager_ms:.3f} | "
            f"{fused_ms:.3f} | {'%.3f' % compile_ms if compile_ms else 'n/a'} | {eager_ms / fused_ms:.2f}x | "
            f"{'same' if same else 'DIFFER'} (max abs diff {diff:.3g}{diff_note}) |"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: shrunk kernels, a small model")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the end-to-end model (default 2)")
    parser.add_argument("--workdir", default=None, help="where the session directory goes (default: a temp dir)")
    parser.add_argument("--reps", type=int, default=5, help="timing repetitions on CPU")
    args = parser.parse_args(argv)

    import torch

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    workdir = args.workdir or tempfile.mkdtemp(prefix="akg_fusion_bench_")
    started = time.time()
    state = run_session(workdir)
    session_s = time.time() - started
    from fusion.analysis import Analysis, table

    analysis = Analysis.model_validate_json(Path(state.fusion.analysis_path).read_text())
    measure = timer(device, args.reps)
    device_name = torch.cuda.get_device_name() if device == "cuda" else "CPU (Triton interpreter, sizes shrunk)"
    print(f"# Fusion mode on Qwen2 — {device_name}\n")
    print(f"session `{state.session_id}` ({state.status}) in {session_s:.0f} s: `{state.fusion.root_dir}`\n")
    print(f"## Analysis ({analysis.description}; {analysis.bandwidth_note})\n")
    print(table(analysis) + "\n")
    print("## Per kernel\n")
    print("\n".join(kernel_rows(state, device, args.tiny, measure)) + "\n")
    print("## End to end\n")
    print("\n".join(end_to_end_rows(state, device, args.tiny, args.layers, measure)) + "\n")
    print(json.dumps({"session": state.session_id, "status": state.status,
                      "results": [r.model_dump(include={"name", "status", "error"}) for r in state.fusion.results]}))
    return 0 if state.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
