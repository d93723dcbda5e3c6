"""Optimize code the user already has: extract a target into a KernelBench task (Phase 2 from
source), integrate the accepted kernel back with backups (Phase 5), and roll it back.

User code and generated code never run in this process: the checks in `integration.checks` run
in a worker through `integration.worker.run_check`.
"""
from integration.errors import ExtractionError, IntegrationError, RollbackError
from integration.extract import ExtractedTask, Need, extract_task
from integration.integrate import FileChange, integrate, report_section, rollback
from integration.verification import check_extraction, compare_whole_model
from integration.worker import CheckResult

__all__ = [
    "CheckResult", "ExtractedTask", "ExtractionError", "FileChange", "IntegrationError", "Need",
    "RollbackError", "check_extraction", "compare_whole_model", "extract_task", "integrate",
    "report_section", "rollback",
]
