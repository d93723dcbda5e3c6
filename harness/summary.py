"""The one paragraph of a verdict that people and fixers read."""
from __future__ import annotations


def summarize(report: dict) -> str:
    """The one paragraph a fixer reads."""
    status = report["status"]
    if status == "accepted":
        head = (f"ACCEPTED: matches the reference in {report['trials']} trials with fresh inputs "
                f"(max abs err {report.get('max_abs_err') or 0:.3g}, max err/scale {report.get('max_rel_err') or 0:.3g}).")
    else:
        head = f"REJECTED ({status}): {report['reason']}."
    parts = [head, f"Triton launches: {report.get('triton_launches', 0)}."]
    left = report.get("torch_ops_left") or []
    if left:
        allowed = set(report.get("allowed_leftovers") or [])
        parts.append("Still in PyTorch: " + ", ".join(f"{op} (allowed extern)" if op in allowed else op
                                                      for op in left) + ".")
    timings = report.get("timings")
    if timings:
        candidate = timings["candidate"]["median_ms"]
        speed = f"Speed: {candidate:.4f} ms (IQR {timings['candidate']['iqr_ms']:.4f})"
        if "eager" in timings:
            speed += f", eager {timings['eager']['median_ms']:.4f} ms ({report.get('speedup_vs_eager') or 0:.2f}x)"
        if "compile" in timings:
            speed += f", torch.compile {timings['compile']['median_ms']:.4f} ms " \
                     f"({report.get('speedup_vs_compile') or 0:.2f}x)"
        roof = report.get("roofline") or {}
        if roof:
            speed += f"; {roof['achieved_gbps']:.0f} GB/s = {100 * roof['bandwidth_fraction']:.0f}% of peak bandwidth"
            if roof.get("compute_fraction") is not None:
                speed += f", {roof['achieved_tflops']:.1f} TFLOP/s = {100 * roof['compute_fraction']:.0f}% of peak"
        parts.append(speed + ".")
    elif status == "accepted":
        parts.append("Speed: not measured" + (" (CPU, Triton interpreter)." if report.get("device") == "cpu" else "."))
    if report.get("shrunk"):
        parts.append("Sizes shrunk for the CPU interpreter: "
                     + ", ".join(f"{k} {a}->{b}" for k, (a, b) in report["shrunk"].items()) + ".")
    if report.get("input_variants"):
        parts.append("Also checked on " + ", ".join(report["input_variants"]) + " inputs"
                     + (f" and {report['second_shape']}" if report.get("second_shape") else "") + ".")
    if report.get("flags"):
        parts.append("Flags: " + "; ".join(report["flags"]) + ".")
    return " ".join(parts)

