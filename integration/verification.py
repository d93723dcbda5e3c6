"""The orchestrator's side of the checks: each call runs `integration.checks` in a worker."""
from __future__ import annotations

from integration.extract import ExtractedTask
from integration.worker import CheckResult, run_check


def check_extraction(task: ExtractedTask | dict, *, device: str = "cpu", timeout_s: float = 300) -> CheckResult:
    """Does the task's Model give the same outputs as the target imported from the user's file?
    (In addition to the harness's validate_task, which every task gets.)"""
    task = task if isinstance(task, ExtractedTask) else ExtractedTask.model_validate(task)
    return run_check("integration.checks:check_extracted",
                     {"source_path": task.source_path, "target_name": task.target_name,
                      "task_code": task.task_code},
                     device=device, timeout_s=timeout_s)


def compare_whole_model(source_path: str, integrated_path: str, model_name: str, init_args: list,
                        input_shapes: list[list[int]], *, device: str = "cpu",
                        timeout_s: float = 300) -> CheckResult:
    """Does `model_name` (e.g. the network that uses the target) compute the same thing when
    built from the integrated file as from the original one?"""
    return run_check("integration.checks:compare_models",
                     {"source_path": source_path, "integrated_path": integrated_path,
                      "model_name": model_name, "init_args": init_args, "input_shapes": input_shapes},
                     device=device, timeout_s=timeout_s)
