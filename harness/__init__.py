"""Isolated verification and honest benchmarking of candidate kernels (torch, triton, stdlib only)."""
from harness.api import validate_task, verify
from harness.executors import EXECUTORS, evaluation_pool
from harness.pool import DevicePool, Evaluation
from harness.sandbox import sandbox_call
from harness.verdict import (CACHEABLE_STATUSES, HARNESS_VERSION, HarnessInputError, SandboxResult, TaskCheck,
                             Verdict, judge_key)

__all__ = ["verify", "validate_task", "sandbox_call", "DevicePool", "Evaluation", "evaluation_pool", "EXECUTORS",
           "Verdict", "TaskCheck", "SandboxResult", "HarnessInputError", "HARNESS_VERSION", "CACHEABLE_STATUSES", "judge_key"]
