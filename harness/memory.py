"""A task's memory footprint, computed without allocating it, and the check that it fits the device.

The footprint (inputs + parameters + outputs) comes from running get_inputs(), Model(...) and
forward() on fake tensors (shapes and dtypes only, no storage); the reference's own peak beyond it
(its intermediates) is the most bytes its fake forward held alive at once. The harness keeps at
most COPIES footprints alive at once (the judge's inputs and reference outputs, the candidate's
staged inputs and outputs), so a task needs COPIES x footprint + the intermediates: when that is
more than the device has free, the job stops with one line saying so, before any real work.
"""
from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

COPIES = 3
GB = 1e9


@dataclass
class Footprint:
    input_bytes: int
    param_bytes: int
    output_bytes: int
    intermediate_bytes: int   # the reference's peak beyond its inputs, parameters and outputs
    exact: bool               # False: the fake forward failed and outputs/intermediates are guessed

    @property
    def total_bytes(self) -> int:
        return self.input_bytes + self.param_bytes + self.output_bytes

    def needed_bytes(self, copies: int = COPIES) -> int:
        return copies * self.total_bytes + self.intermediate_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes, "needed_bytes": self.needed_bytes()}


class TaskTooLarge(Exception):
    """The task cannot fit the device's free memory. str() is the one line the user sees."""


def _nbytes(value) -> int:
    from harness.compare import flatten
    return sum(t.numel() * t.element_size() for t in flatten(value) if isinstance(t, torch.Tensor))


class _LiveBytes(TorchDispatchMode):
    """Bytes of the tensors an op creates, alive at once (freed when their Python object dies)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def _free(self, size: int) -> None:
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(r.alias_info is not None for r in func._schema.returns):
            return out  # a view or an in-place op: no new storage
        from harness.compare import flatten
        for t in flatten(out):
            if isinstance(t, torch.Tensor):
                size = t.numel() * t.element_size()
                self.live += size
                weakref.finalize(t, self._free, size)
        self.peak = max(self.peak, self.live)
        return out


def estimate(task) -> Footprint:
    """The task's footprint at its current sizes, from fake tensors (nothing is allocated)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            inputs = task.get_inputs()
            model = task.Model(*task.get_init_inputs())
            params = sum(_nbytes(t) for t in list(model.parameters()) + list(model.buffers()))
            tracker = _LiveBytes()
            with torch.no_grad(), tracker:
                output = model(*inputs)
            out_bytes = _nbytes(output)
            return Footprint(_nbytes(inputs), params, out_bytes, max(0, tracker.peak - out_bytes), exact=True)
    except Exception:
        pass
    # The fake forward failed (data-dependent code, a custom op): inputs from meta tensors, the
    # outputs assumed as large as the largest input, intermediates as large again.
    try:
        with torch.device("meta"):
            inputs = task.get_inputs()
    except Exception:
        return Footprint(0, 0, 0, 0, exact=False)
    largest = max((_nbytes(t) for t in inputs if isinstance(t, torch.Tensor)), default=0)
    return Footprint(_nbytes(inputs), 0, largest, largest, exact=False)


def host_available_bytes() -> int:
    """Memory the host can still give (MemAvailable), or 0 when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def address_space_left() -> int | None:
    """What this process may still map under its address-space limit (a CPU job's, set by the
    worker), or None where it has none."""
    import resource

    from harness import isolation
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        return max(0, limit - isolation.mapped_bytes())
    except OSError:
        return None


def free_bytes(on_gpu: bool) -> tuple[int, str]:
    """(free bytes, what they are) of the device the job runs on: on the host, the lesser of what
    the machine has available and what the job's own limit lets it map (a 13 GB task passed a
    check against the machine's 20 GB, then died of its job's 8 GB limit with an allocator error)."""
    if on_gpu:
        free, _total = torch.cuda.mem_get_info()
        return free, f"GPU memory free on {torch.cuda.get_device_name()}"
    available, left = host_available_bytes(), address_space_left()
    if left is not None and (not available or left < available):
        return left, "host memory available to this job (its address-space limit)"
    return available, "host memory available"


def check_fits(task, on_gpu: bool, *, shrunk: bool = False, free: tuple[int, str] | None = None) -> Footprint:
    """Raise TaskTooLarge (one line: needed vs free, and what to do) when the task cannot fit."""
    footprint = estimate(task)
    available, where = free if free is not None else free_bytes(on_gpu)
    needed = footprint.needed_bytes()
    if available and needed > available:
        detail = (f"{COPIES} copies of its {footprint.total_bytes / GB:.2f} GB footprint: inputs "
                  f"{footprint.input_bytes / GB:.2f} GB, parameters {footprint.param_bytes / GB:.2f} GB, "
                  f"outputs {footprint.output_bytes / GB:.2f} GB; plus {footprint.intermediate_bytes / GB:.2f} GB "
                  "of the reference's intermediates")
        if on_gpu:
            advice = "use smaller sizes in get_inputs(), free the GPU of other work, or run on a GPU with more memory"
        elif not shrunk:
            advice = ("define the sizes as module-level integer constants (BATCH = 4096) so the CPU run can "
                      "shrink them, or use smaller sizes")
        else:
            advice = "use smaller sizes, or run on a GPU"
        raise TaskTooLarge(f"the task needs about {needed / GB:.1f} GB ({detail}) but only "
                           f"{available / GB:.1f} GB of {where}: {advice}")
    return footprint


def job_memory(task, on_gpu: bool, shrunk: bool) -> dict:
    """What a job records before its work starts: the footprint and the free memory it was
    checked against (raises TaskTooLarge when the task cannot fit)."""
    free = free_bytes(on_gpu)
    footprint = check_fits(task, on_gpu, shrunk=shrunk, free=free)
    return {"footprint": footprint.to_dict(), "free_bytes": free[0]}


def peak_usage(on_gpu: bool) -> dict:
    """Peak memory of this job: the judge's device allocations (torch's allocator, this process
    only), and the largest resident set of the judge and of its reaped children (the candidate)."""
    import resource
    peaks = {"peak_host_bytes": 1024 * max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)}
    if on_gpu and torch.cuda.is_initialized():
        peaks["peak_device_bytes"] = torch.cuda.max_memory_allocated()
    return peaks
