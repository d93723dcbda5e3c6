"""The session state: everything a session knows, JSON-serialisable, checkpointed after each step.

No tensors, open handles or secrets live here: a session must resume from any process, and the
checkpoint database must be safe to share.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["running", "waiting", "done", "failed", "cancelled"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Params(BaseModel):
    """The target a kernel is written for (Phase 0's confirmation)."""

    framework: str = "torch"
    backend: str = "cuda"
    arch: str = "h100"
    dsl: str = "triton_cuda"


class EnvInfo(BaseModel):
    """What Phase 0 found on this machine."""

    device_kind: str = "cpu"  # cuda | npu | cpu
    device_name: str = "cpu"
    arch: str = "cpu"
    device_count: int = 0
    torch_version: str = ""
    triton_version: str = ""
    triton_mode: str = "interpreter"  # native | interpreter
    python_version: str = ""
    llm: str = "embedded"
    model: str | None = None
    from_cache: bool = False  # detected by an earlier run, not this one
    detected_at: float = 0.0  # unix time of the detection

    @property
    def verify_device(self) -> str:
        return "cuda" if self.device_kind == "cuda" else "cpu"


class Settings(BaseModel):
    """The session's configuration: request flags plus defaults. One object, stored in the state
    so that `resume` in another process behaves exactly as the process that started the session."""

    request: str = ""
    task_file: str | None = None
    source_file: str | None = None
    target: str | None = None
    shapes: list[list[int]] | None = None
    dtype: str | None = None
    init_args: list | None = None  # constructor arguments of a --source target
    workflow: str | None = None  # preselected workflow (default answer at choose_workflow)
    workdir: str = "~/akg_agents_logs"
    out_dir: str | None = None  # where integrate copies {op}_generated.py (default: the cwd at run)
    in_place: bool = False
    max_iterations: int = 10
    repeat_error_limit: int = 3
    harness_timeout_s: float = 120.0
    trials: int = 5
    llm: str = "embedded"
    model: str | None = None
    llm_base_url: str | None = None
    llm_timeout_s: float = 120.0
    temperature: float = 0.2
    max_tokens: int = 8192
    overrides: dict[str, str] = Field(default_factory=dict)  # --framework/--backend/--arch/--dsl
    search_options: dict[str, str] = Field(default_factory=dict)  # --option key=value
    auto_approve: bool = False


class Pending(BaseModel):
    """The question a gate asks; the client answers it by writing `SessionState.answer`."""

    gate: str
    question: str
    options: list[str] = Field(default_factory=list)
    default: str = "yes"
    detail: str = ""  # what to show with the question (parameters, task source, code)
    detail_kind: Literal["text", "python", "markdown"] = "text"
    asks: list[str] = Field(default_factory=list)  # keys a key=value answer must give (e.g. shapes)


class Attempt(BaseModel):
    """One kernelgen iteration: the code tried and what the harness said."""

    iteration: int
    action: Literal["generate", "fix"]
    code_path: str | None = None
    status: str = "pending"  # harness verdict status, or "no_code" when the generator gave none
    accepted: bool = False
    summary: str = ""
    error_signature: str = ""
    give_up: bool = False  # the generator says more attempts cannot help (e.g. unsupported op)


class RunRecord(BaseModel):
    """One workflow run (`output/{workflow}_{n}/`)."""

    workflow: str
    index: int
    dir: str
    status: Literal["running", "success", "failed"] = "running"
    iterations: int = 0
    attempts: list[Attempt] = Field(default_factory=list)
    verdict: dict | None = None  # the final (best) candidate's verdict
    code_path: str | None = None  # the final (best) candidate's code
    error: str | None = None
    llm_usage: dict = Field(default_factory=dict)  # totals: calls, prompt/completion tokens, seconds
    started: str = Field(default_factory=now_iso)
    finished: str | None = None


class FileChange(BaseModel):
    path: str
    action: str  # created | modified | restored | removed
    before_hash: str | None = None
    after_hash: str | None = None
    backup_path: str | None = None


class FusionResult(BaseModel):
    """One picked fusion opportunity's way through the phases (fusion mode)."""

    name: str
    rank: int
    status: str = "pending"  # pending | realized | failed
    error: str | None = None
    task_path: str | None = None
    kernel_path: str | None = None
    runs: list[RunRecord] = Field(default_factory=list)


class FusionState(BaseModel):
    """Fusion mode: the analysis, the picked opportunities and where the loop over them is."""

    root_dir: str  # op_{model}_fusion_{timestamp}_{id}
    analysis_path: str
    model: str
    kind: str  # hf | file
    picked: list[str] = Field(default_factory=list)
    position: int = -1  # index in `picked` of the opportunity being realized
    results: list[FusionResult] = Field(default_factory=list)
    model_check: dict | None = None  # the whole model, original vs fused


class SessionState(BaseModel):
    session_id: str = ""
    created: str = Field(default_factory=now_iso)
    settings: Settings = Field(default_factory=Settings)
    phase: str = "start"
    status: Status = "running"
    error: str | None = None

    env: EnvInfo | None = None
    params: Params | None = None

    op_name: str | None = None
    session_dir: str | None = None  # <workdir>/op_{op}_{timestamp}_{id}
    task_path: str | None = None
    task_check: dict | None = None
    target_name: str | None = None  # the class/function in settings.source_file
    extracted: dict | None = None  # integration.extract.ExtractedTask, for --source sessions

    workflow: str | None = None
    runs: list[RunRecord] = Field(default_factory=list)
    accepted_code_path: str | None = None  # the accepted candidate in its run directory
    kernel_path: str | None = None  # where integrate put {op}_generated.py for the user
    changes: list[FileChange] = Field(default_factory=list)
    report_path: str | None = None

    pending: Pending | None = None
    answer: str | None = None
    history: list[str] = Field(default_factory=list)  # one line per event, for `akg-op show`
    fusion: FusionState | None = None  # fusion mode only

    @property
    def current_run(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None

    def with_current_run(self, run: RunRecord) -> list[RunRecord]:
        """The runs with the current (last) one replaced: what a node returns as its update."""
        return [*self.runs[:-1], run]


def log(state: SessionState, line: str) -> list[str]:
    """The history with one more timestamped line (nodes return it as an update)."""
    return [*state.history, f"{now_iso()} {line}"]


STATE_MODELS = (Params, EnvInfo, Settings, Pending, Attempt, RunRecord, FileChange, FusionResult, FusionState,
                SessionState)
