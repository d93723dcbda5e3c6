"""Where a task's time goes: the CUDA kernels of its eager model, its torch.compile'd model and a
generated file, each with its time per call, by torch.profiler.

    python -m bench.profile_kernels TASK.py GENERATED.py [TASK.py GENERATED.py ...]   (GENERATED: - for none)

Three warm-up calls, then three profiled ones; the eight longest kernels of each are printed. Used
to find what separates a kernel from torch.compile (bench/results/h100_large_speed_studies.md).
"""
from __future__ import annotations

import importlib.util
import sys

import torch
from torch.profiler import ProfilerActivity, profile

CALLS = 3


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _profile(fn, inputs, label: str) -> None:
    for _ in range(CALLS):
        fn(*inputs)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            fn(*inputs)
        torch.cuda.synchronize()
    kernels = sorted((e for e in prof.key_averages() if e.device_time_total > 0), key=lambda e: -e.device_time_total)
    print(f"--- {label}: {sum(e.device_time_total for e in kernels) / CALLS / 1000:.3f} ms per call")
    for e in kernels[:8]:
        print(f"  {e.device_time_total / CALLS / 1000:8.3f} ms x{e.count // CALLS:<3} {e.key[:110]}")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print("usage: " + next(line.strip() for line in __doc__.splitlines() if "python -m" in line), file=sys.stderr)
        return 2
    for task_path, generated in zip(argv[::2], argv[1::2]):
        torch.manual_seed(0)
        task = _load(task_path, "task")
        inputs = [a.cuda() if isinstance(a, torch.Tensor) else a for a in task.get_inputs()]
        model = task.Model(*task.get_init_inputs()).cuda().eval()
        print(f"===== {task_path}")
        with torch.no_grad():
            _profile(model, inputs, "eager")
            _profile(torch.compile(model), inputs, "torch.compile")
            if generated != "-":
                ours = _load(generated, "generated").ModelNew(*task.get_init_inputs()).cuda().eval()
                ours.load_state_dict(model.state_dict())
                _profile(ours, inputs, "ours")
        del inputs, model
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
