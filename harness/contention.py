"""Other work on the GPU while the judge times: a figure taken on a shared device is flagged.

Measured alone, the harness's speedups agree with an independent do_bench script; measured while
other processes use the GPU they were off by up to 4x and nothing said so. Around each timing
the judge asks NVML (nvidia-ml-py) which processes hold a compute context on the device, before
and after, and how busy each was in between (per-process SM utilisation samples). Processes of
this job (the judge and the candidate it started) are not "other work". When other work was seen,
the judge times once more; a figure still contended is kept, marked `timings["contended"]`, and
flagged in the verdict. Where NVML cannot be asked (not installed, or it fails), nothing is
claimed either way: `timings["contended"]` is None and a flag says the figures were not checked.
"""
from __future__ import annotations

import os
import time

OWN_PROCESSES_ON_GPU = 2  # the judge and its candidate hold a CUDA context each


def load_nvml():
    """The pynvml module, initialised; None when NVML is not available here."""
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def _nvml_index(device_index: int) -> int:
    """NVML's index of a torch device (they differ under CUDA_VISIBLE_DEVICES)."""
    try:
        import torch
        return int(torch.cuda._get_nvml_device_index(device_index))
    except Exception:
        return device_index


def own_pids(root: int | None = None) -> set[int]:
    """This process and all its descendants (the candidate process tree), from /proc."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return {root}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    seen, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, []))
    return seen


class DeviceWatch:
    """start() before a timed section, stop() after: what else ran on the device meanwhile."""

    def __init__(self, device_index: int = 0, nvml=None, pids=own_pids, own_processes: int = OWN_PROCESSES_ON_GPU):
        self.nvml = nvml if nvml is not None else load_nvml()
        self.pids = pids
        self.own_processes = own_processes  # where NVML's pids cannot be matched: how many are this job's
        self.handle = None
        self.started_us = 0
        self.before: set[int] = set()
        if self.nvml is not None:
            try:
                self.handle = self.nvml.nvmlDeviceGetHandleByIndex(_nvml_index(device_index))
            except Exception:
                self.handle = None

    def _processes(self) -> set[int]:
        return {p.pid for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)}

    def _busy_since(self, since_us: int) -> dict[int, int]:
        """SM utilisation (%) per process since since_us; {} where the driver keeps no samples."""
        try:
            samples = self.nvml.nvmlDeviceGetProcessUtilization(self.handle, since_us)
        except Exception:
            return {}
        busy: dict[int, int] = {}
        for sample in samples:
            busy[sample.pid] = max(busy.get(sample.pid, 0), int(sample.smUtil))
        return busy

    def start(self) -> None:
        if self.handle is None:
            return
        self.started_us = int(time.time() * 1e6)
        try:
            self.before = self._processes()
        except Exception:
            self.handle = None

    def stop(self) -> dict:
        """{"checked": bool, "contended": bool, "other_processes": n, "other_sm_util_pct": max %}"""
        if self.handle is None:
            return {"checked": False, "contended": False, "why": "NVML is not available"}
        try:
            seen = self.before | self._processes()
        except Exception as error:
            return {"checked": False, "contended": False, "why": f"NVML failed: {error}"}
        busy = self._busy_since(self.started_us)
        ours = self.pids()
        if seen & ours:
            others = seen - ours
            # A context alone is not contention (an idle parent that once touched CUDA): where the
            # driver keeps per-process samples (it does for this job's own busy processes), only
            # other processes with SM activity count; without samples every other process does.
            working = {pid for pid in others if busy.get(pid, 0) > 0} if busy else others
            other_util = max((busy.get(pid, 0) for pid in working), default=0)
        else:
            # NVML reports another PID namespace's ids (a container): none can be matched to this
            # job, whose own processes (two while the candidate is timed, the judge alone for the
            # baselines) are busy while it times. Other work is what goes beyond them: busy
            # processes where there are samples, else processes with a context.
            active = {pid for pid, util in busy.items() if util > 0} if busy else seen
            extra = max(0, len(active) - self.own_processes)
            working = set(sorted(active)[:extra])
            others = set(sorted(seen | active)[:max(0, len(seen | active) - self.own_processes)])
            other_util = max(busy.values(), default=0) if working else 0
        return {"checked": True, "contended": bool(working), "other_processes": len(working),
                "idle_other_processes": len(others - working), "other_sm_util_pct": other_util}


def time_watched(judge, step, watch=DeviceWatch, retries: int = 1) -> None:
    """step() (a timing of the judge's) under a DeviceWatch; when other work used the device, time
    again (up to `retries` times). The timings say whether the figure kept was contended (either
    step's: True), seen alone (False) or not seen (None); a contended or unseen one is flagged."""
    index = 0
    try:
        import torch
        index = torch.cuda.current_device()
    except Exception:
        pass
    for attempt in range(retries + 1):
        watcher = watch(index)
        watcher.start()
        step()
        seen = watcher.stop()
        if not seen.get("contended"):
            break
    judge.report["flags"] = list(dict.fromkeys(judge.report["flags"]))  # a second timing repeats its flags
    timings = judge.report.get("timings")
    if timings is None:
        return
    worse = seen.get("contended") or (not seen.get("checked") and not timings.get("contended"))
    if "contention" not in timings or worse:  # the worse of the steps: contended, else unseen
        timings["contention"] = dict(seen, attempts=attempt + 1)
    if timings.get("contended") or seen.get("contended"):
        timings["contended"] = True
    elif seen.get("checked") and timings.get("contended", False) is False:
        timings["contended"] = False
    else:  # this step or an earlier one unseen: unknown, never said uncontended
        timings["contended"] = None
        unchecked = (f"not checked for other work on the GPU while timing ({seen.get('why')}): "
                     "if the GPU was shared, the times and speedups may be off")
        if not seen.get("checked") and unchecked not in judge.report["flags"]:  # once, though both steps are blind
            judge.report["flags"].append(unchecked)
    if seen.get("contended"):
        judge.report["flags"].append(
            f"contended: {seen['other_processes']} other process(es) used the GPU while timing "
            f"(up to {seen['other_sm_util_pct']}% SM), also when timed again: the times and speedups "
            "may be off; time on an unshared GPU")
