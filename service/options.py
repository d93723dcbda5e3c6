"""A session's run options, one set for every surface: the CLI's `run` flags by their long names
(`--max-iterations` is `max_iterations`), which the HTTP endpoint takes as `options`. Everything is
checked before a session exists, so bad input creates none."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from session_state import Settings
from nodes.errors import UserError
from nodes.user_paths import checked_out_dir, checked_source

LONG_WORKFLOWS = ("adaptive_search", "evolve")  # the HTTP endpoint runs these in the background


class RunOptions(BaseModel):
    """`akg-op run`'s flags (defaults as there)."""

    model_config = ConfigDict(extra="forbid")

    task: Optional[str] = None
    source: Optional[str] = None
    target: Optional[str] = None
    shapes: Optional[str] = None
    dtype: Optional[str] = None
    workflow: Optional[str] = None
    yes: bool = False
    workdir: str = "~/akg_agents_logs"
    out: Optional[str] = None
    in_place: bool = False
    framework: Optional[str] = None
    backend: Optional[str] = None
    arch: Optional[str] = None
    dsl: Optional[str] = None
    max_iterations: int = Field(10, ge=1, le=100)
    judge_timeout: float = Field(120.0, ge=10, le=3600)
    llm: Optional[str] = None
    model: Optional[str] = None
    llm_timeout: Optional[float] = None
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    option: Union[list[str], dict[str, str]] = Field(default_factory=list)
    background: bool = False


def run_options(raw: dict) -> RunOptions:
    """Options from a JSON object (dashes or underscores in names); UserError in one line."""
    try:
        return RunOptions.model_validate({str(k).replace("-", "_"): v for k, v in (raw or {}).items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        if first["type"] == "extra_forbidden":
            raise UserError(f"unknown option '{where}': use the long names of akg-op run's flags, "
                            f"e.g. {', '.join(list(RunOptions.model_fields)[:6])}") from None
        raise UserError(f"option {where}: {first['msg']}") from None


def _absolute(path: str | None, cwd: Path) -> str | None:
    return str((cwd / Path(path).expanduser()).resolve()) if path else None


def build_settings(request: str, options: RunOptions, cwd: Path | None = None) -> Settings:
    """The session's Settings from a request and its options, checked (UserError when bad)."""
    cwd = cwd or Path.cwd()
    if not request and not options.task and not options.source:
        raise UserError('say what to build, e.g. akg-op run "relu kernel, input (128, 4096), fp32", or pass --task FILE')
    overrides = {k: v for k, v in dict(framework=options.framework, backend=options.backend,
                                       arch=options.arch, dsl=options.dsl).items() if v}
    llm = resolve_llm(options.llm, options.model, timeout_s=options.llm_timeout,
                      temperature=options.temperature, max_tokens=options.max_tokens)
    # Links are judged on the paths as given, before anything resolves them.
    source = checked_source(cwd / Path(options.source).expanduser(), options.in_place) if options.source else None
    out = checked_out_dir(cwd / Path(options.out).expanduser()) if options.out else None
    settings = Settings(
        request=request, task_file=_absolute(options.task, cwd), source_file=source,
        target=options.target, shapes=parse_shapes(options.shapes), dtype=options.dtype,
        workflow=options.workflow, workdir=_absolute(options.workdir, cwd),
        # Without --out: a kernel goes to the current directory, an integration beside --source.
        out_dir=out or (None if options.source else str(cwd)),
        in_place=options.in_place, max_iterations=options.max_iterations,
        harness_timeout_s=options.judge_timeout, llm=llm.provider,
        model=llm.model, llm_base_url=llm.base_url, llm_timeout_s=llm.timeout_s,
        temperature=llm.temperature, max_tokens=llm.max_tokens, overrides=overrides,
        search_options=parse_search_options(options.option), auto_approve=options.yes,
    )
    check_before_start(settings)
    return settings


# ------------------------------------------------- moved from cli.py (_parse_shapes … _check_search_options)


def parse_shapes(text: Optional[str]) -> Optional[list[list[int]]]:
    if not text:
        return None
    from nodes.catalogue import parse_shapes_text

    return [list(s) for s in parse_shapes_text(text)]


def parse_search_options(items: list[str] | dict[str, str]) -> dict[str, str]:
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option '{item}' is not key=value")
        options[key.strip()] = value.strip()
    return options


def resolve_llm(llm: Optional[str], model: Optional[str], **options):
    """Flags, then AKG_OP_LLM/AKG_OP_MODEL/OPENAI_BASE_URL; the key stays in the environment."""
    from generators.llm_config import LLMSettings

    try:
        return LLMSettings.resolve(llm=llm, model=model, **options)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise UserError(str(exc).splitlines()[0]) from None


def check_before_start(settings: Settings) -> None:
    """Everything we can check without running anything, so bad input creates no session."""
    from fusion.models import require_architecture
    from fusion.request import is_fusion_request
    from session_state import EnvInfo
    from nodes.catalogue import find_arch, parse_request
    from nodes.env_probe import cached_detect
    from nodes.params import propose_params
    from nodes.task_files import check_task_source, read_task_file
    from nodes.workflows import available_workflows

    if settings.task_file:
        check_task_source(read_task_file(settings.task_file), settings.task_file)
    elif settings.source_file:
        if not Path(settings.source_file).is_file():
            raise UserError(f"source file {settings.source_file} does not exist: check --source")
    elif is_fusion_request(settings.request):  # fusion mode on a Hugging Face architecture
        require_architecture(settings.request)
    elif settings.llm == "embedded":
        parse_request(settings.request, shapes=settings.shapes, dtype=settings.dtype)
    if settings.source_file and is_fusion_request(settings.request) and not settings.shapes:
        raise UserError("fusion analysis of a model file needs its input shapes: pass --shapes, e.g. '(2, 16)'")
    if settings.workflow and settings.workflow not in available_workflows():
        raise UserError(f"unknown workflow '{settings.workflow}': choose one of {', '.join(available_workflows())}")
    if settings.search_options:
        check_search_options(settings)
    env, _ = cached_detect()
    propose_params(EnvInfo(**env), find_arch(settings.request), settings.overrides)


def check_search_options(settings: Settings) -> None:
    """--option pairs must suit the chosen search workflow (or, with none chosen, one of them)."""
    import search

    pairs = [f"{k}={v}" for k, v in settings.search_options.items()]
    workflows = [settings.workflow] if settings.workflow in LONG_WORKFLOWS else list(LONG_WORKFLOWS)
    errors = []
    for workflow in workflows:
        try:
            search.parse_options(workflow, pairs)
            return
        except search.OptionError as exc:
            errors.append(str(exc))
    raise UserError(errors[0])
