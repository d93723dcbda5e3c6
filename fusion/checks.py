"""Whole-model checks of fusion mode; they run model and kernel code, so only in a worker
(`integration.worker.run_check`). Same weights (one seed), same inputs, outputs compared within
the dtype's tolerance."""
from __future__ import annotations

import torch

from integration.checks import compare_outputs, load_module_from_path

# Small configurations of each architecture: the kernels read their sizes at run time, so the
# same kernels run a small model in seconds, in the Triton interpreter too.
SMALL = {
    "qwen2": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                  num_hidden_layers=2, vocab_size=128, max_position_embeddings=64),
    "llama": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                  num_hidden_layers=2, vocab_size=128, max_position_embeddings=64),
    "mistral": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                    num_hidden_layers=2, vocab_size=128, max_position_embeddings=64),
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4, n_positions=64, vocab_size=128),
}


def forward_times(original, fused, inputs: list) -> dict:
    """On a GPU: the model's forward in ms, eager vs fused vs torch.compile of the original
    (median of triton's do_bench). Timing never fails a check: a problem is reported instead."""
    import triton.testing

    def bench(fn) -> float:
        return round(float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")), 4)

    times: dict = {}
    try:
        with torch.no_grad():
            times["eager_ms"] = bench(lambda: original(*inputs))
            times["fused_ms"] = bench(lambda: fused(*inputs))
            compiled = torch.compile(original)
            times["compile_ms"] = bench(lambda: compiled(*inputs))
    except Exception as exc:  # e.g. no compiler toolchain for torch.compile
        times["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return times


def compare_model_outputs(expected, actual, exact=None) -> dict:
    """float32: the outputs match within tolerance. Lower precision: eager rounds after every op
    and a fused kernel once, so both are compared with `exact` (the model run in float32 on the
    same weights): the fused model must be about as close to it as eager is."""
    if exact is None or expected.dtype == torch.float32:
        return compare_outputs(expected, actual)
    eager_err = float((expected.float() - exact).abs().max())
    fused_err = float((actual.float() - exact).abs().max())
    ok = actual.shape == expected.shape and fused_err <= 2 * eager_err + 1e-3
    return {"ok": ok, "max_abs_diff": float((expected.float() - actual.float()).abs().max()),
            "eager_err_vs_fp32": eager_err, "fused_err_vs_fp32": fused_err,
            "message": (f"fused {expected.dtype} error vs float32 {fused_err:.3g}, eager's {eager_err:.3g}"
                        + ("" if ok else ": the fused model is less accurate than eager"))}


def _swapped(model: torch.nn.Module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for module in model.modules():
        if "forward" in vars(module):
            counts[type(module).__name__] = counts.get(type(module).__name__, 0) + 1
    return counts


def _summary(result: dict, swapped: dict[str, int], what: str) -> dict:
    modules = ", ".join(f"{n}× {c}" for c, n in swapped.items()) or "no module"
    if result["ok"]:
        result["message"] = f"{what} match the original (max abs diff {result.get('max_abs_diff', 0):.3g}); swapped {modules}"
    result["swapped_modules"] = swapped
    return result


def check_hf_fused(fused_path: str, arch: str, dtype: str, device: str = "cpu", seed: int = 0,
                   batch: int = 2, tokens: int = 16, real_tokens: list[int] | None = None) -> dict:
    """A small model of the architecture: logits before and after apply_fusions (batch as
    analysed: a size-1 dim of a task may be fixed in its kernel)."""
    from fusion import models
    from fusion.analysis import _hidden

    config = models.hf_config(arch, overrides=SMALL[arch])
    torch.manual_seed(seed)
    model = models.build_hf(arch, config, dtype).to(device)
    generator = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, config.vocab_size, (batch, tokens), generator=generator).to(device)
    with torch.no_grad():
        exact = None
        if dtype != "float32":  # the same weights in float32: what both precisions approximate
            torch.manual_seed(seed)
            exact = models.build_hf(arch, config, dtype).to(device).float()(ids).logits
        expected = model(ids).logits
        load_module_from_path(fused_path).apply_fusions(model)
        swapped = _swapped(model)
        actual = model(ids).logits
    if not swapped:
        return {"ok": False, "message": "apply_fusions swapped no module of the model"}
    result = _summary(compare_model_outputs(expected, actual, exact), swapped, f"{arch} logits ({config.num_hidden_layers} layers, "
                                                                   f"hidden {_hidden(config)})")
    if result["ok"] and device.startswith("cuda") and real_tokens:
        result["timings"] = _real_width_times(arch, dtype, device, fused_path, real_tokens)
    return result


def _real_width_times(arch: str, dtype: str, device: str, fused_path: str, tokens: list[int]) -> dict:
    """One layer at the analysed widths and tokens: eager vs fused vs torch.compile."""
    from fusion import models

    config = models.hf_config(arch, layers=1)
    with torch.device(device):  # random init on the device: seconds at 7B widths
        torch.manual_seed(0)
        original = models.build_hf(arch, config, dtype)
        fused = models.build_hf(arch, config, dtype)
    fused.load_state_dict(original.state_dict())
    load_module_from_path(fused_path).apply_fusions(fused)
    ids = torch.randint(0, config.vocab_size, tuple(tokens), device=device)
    times = forward_times(original, fused, [ids])
    times["model"] = f"{arch}, 1 layer at full width, tokens {tuple(tokens)}, {dtype}"
    return times


def check_file_fused(source_path: str, integrated_path: str, target: str, shapes: list[list[int]], dtype: str,
                     device: str = "cpu", seed: int = 0) -> dict:
    """The rewritten file's model, loaded with the original's state_dict, gives its outputs."""
    from pathlib import Path

    from fusion.models import example_inputs
    from integration.checks import _build_pair

    original = load_module_from_path(source_path)
    integrated = load_module_from_path(integrated_path, extra_paths=(str(Path(source_path).parent),))
    reference, candidate, problem = _build_pair(getattr(original, target), getattr(integrated, target), [], seed,
                                                getattr(torch, dtype))
    if problem:
        return {"ok": False, "message": problem}
    inputs = example_inputs(reference, shapes, dtype, seed=seed + 1)
    reference, candidate = reference.to(device), candidate.to(device)
    with torch.no_grad():
        expected = reference(*[i.to(device) for i in inputs])
        actual = candidate(*[i.to(device) for i in inputs])
        exact = None
        if dtype != "float32" and isinstance(expected, torch.Tensor):
            import copy

            exact = copy.deepcopy(reference).float()(*[i.to(device).float() if i.is_floating_point() else i.to(device)
                                                       for i in inputs])
    swapped = _file_swaps(integrated_path)
    result = _summary(compare_model_outputs(expected, actual, exact), swapped, f"{target} outputs")
    if result["ok"] and device.startswith("cuda"):
        result["timings"] = forward_times(reference, candidate, [i.to(device) for i in inputs])
        result["timings"]["model"] = f"{target}, inputs {shapes}, {dtype}"
    return result


def _file_swaps(integrated_path: str) -> dict[str, int]:
    """Kernels the rewritten file imports (by fusion name)."""
    import re

    text = open(integrated_path, encoding="utf-8").read()
    return {name: 1 for name in re.findall(r"from (\w+)_generated import ModelNew", text)}
