"""Device peaks (dense, vendor datasheets) and roofline figures for a timed candidate."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DevicePeak:
    name: str
    bandwidth_gbps: float
    tflops: dict  # by dtype of the work: fp32 (CUDA cores), tf32/fp16/bf16/fp8 (tensor cores)


# Matched by substring of torch.cuda.get_device_name(), most specific first.
PEAKS = [
    DevicePeak("H100 PCIe", 2000, {"fp32": 51.2, "tf32": 378, "fp16": 756, "bf16": 756, "fp8": 1513}),
    DevicePeak("H100", 3350, {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "fp8": 1978.9}),
    DevicePeak("H200", 4800, {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "fp8": 1978.9}),
    DevicePeak("A100-PCIE-40GB", 1555, {"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312}),
    DevicePeak("A100", 2039, {"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312}),
]
_DTYPE_KEYS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp32"}


def peak_for(device_name: str) -> DevicePeak | None:
    for peak in PEAKS:
        if peak.name in device_name:
            return peak
    return None


def measure_bandwidth_gbps(device="cuda", size_bytes: int = 1 << 29, reps: int = 10) -> float:
    """Device-to-device copy rate, counting bytes read and written."""
    source = torch.empty(size_bytes, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        target.copy_(source)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / reps
    return 2 * size_bytes / seconds / 1e9


def roofline(*, traffic_bytes: int, flops: int, median_ms: float, device_name: str,
             dtype: torch.dtype) -> dict:
    peak = peak_for(device_name)
    if peak is not None:
        bandwidth, source = peak.bandwidth_gbps, f"datasheet ({peak.name})"
        peak_tflops = peak.tflops.get(_DTYPE_KEYS.get(dtype, "fp32"))
    else:
        bandwidth, source, peak_tflops = measure_bandwidth_gbps(), "measured copy bandwidth", None
    seconds = median_ms / 1e3
    achieved_gbps = traffic_bytes / seconds / 1e9 if seconds > 0 else float("inf")
    figures = {
        "traffic_bytes": traffic_bytes,
        "achieved_gbps": round(achieved_gbps, 2),
        "peak_gbps": bandwidth,
        "bandwidth_fraction": round(achieved_gbps / bandwidth, 4),
        "memory_bound_ms": traffic_bytes / (bandwidth * 1e9) * 1e3,
        "peak_source": source,
        "flops": flops or None,
        "achieved_tflops": None, "peak_tflops": peak_tflops, "compute_fraction": None,
    }
    if flops and seconds > 0:
        achieved_tflops = flops / seconds / 1e12
        figures["achieved_tflops"] = round(achieved_tflops, 3)
        if peak is not None and dtype == torch.float32 and peak_tflops and achieved_tflops > peak_tflops:
            # fp32 work faster than the CUDA cores' peak ran on the tensor cores (in TF32, as a
            # convolution's reference does): measured against theirs, not reported as over 100 %
            peak_tflops = figures["peak_tflops"] = peak.tflops["tf32"]
        if peak_tflops:
            figures["compute_fraction"] = round(achieved_tflops / peak_tflops, 4)
    return figures
