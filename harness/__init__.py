"""Isolated verification and honest benchmarking of candidate kernels (torch, triton, stdlib only)."""
from harness.api import validate_task, verify
from harness.pool import DevicePool
from harness.sandbox import sandbox_call
from harness.verdict import HarnessInputError, SandboxResult, TaskCheck, Verdict

__all__ = ["verify", "validate_task", "sandbox_call", "DevicePool", "Verdict", "TaskCheck", "SandboxResult",
           "HarnessInputError"]
