"""Lower every task of the suite with the embedded generator, verify it with the harness, tabulate.

    python -m bench.run_suite --device cpu  --out BENCH_CPU.md        # interpreter, shrunk shapes
    python -m bench.run_suite --device cuda --out BENCHMARKS.md       # full shapes, timed
    python -m bench.run_suite --device cuda --tasks bench/tasks_large   # benchmark sizes (GBs per tensor)
    python -m bench.run_suite --device cuda --tasks bench/tasks_large --via-cli WORKDIR   # through akg-op run
    options: --only PATTERN (a task's name, or a part of names; repeatable)  --tasks DIR  --keep DIR (generated files)
             --no-measure  --tunables JSON  --budget-s SECONDS  --json FILE  --via-cli WORKDIR

The table: task, family, verdict, eager / torch.compile / ours (ms, median), speedups, achieved
GB/s and % of the device's peak bandwidth (from the harness's roofline figures), the task's memory
footprint, the judge's peak device (GPU) or host (CPU) memory, and whether the timing was taken while
other processes used the GPU (contended: re-timed once, then flagged; "unchecked" where NVML could
not look). A summary line gives the acceptance rate and, on a GPU, geometric-mean speedups per
family.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import codegen  # noqa: E402
from bench.selection import matches  # noqa: E402


CLI_TIMEOUT_S = 1800.0   # one task through akg-op run, its fix loop included


def family(name: str) -> str:
    return name.split("_")[0]


def _ms(verdict, key):
    t = (verdict.timings or {}).get(key) or {}
    v = t.get("median_ms")
    return v


def _memory_gb(verdict):
    """(footprint, peak) in GB: the task's inputs + parameters + outputs, and the judge's peak
    device memory (GPU) or peak resident host memory (CPU)."""
    memory = verdict.memory or {}
    footprint = (memory.get("footprint") or {}).get("total_bytes")
    peak = memory.get("peak_device_bytes", memory.get("peak_host_bytes"))
    return (footprint / 1e9 if footprint else None), (peak / 1e9 if peak else None)


def _launch_us(verdict):
    return ((verdict.timings or {}).get("candidate") or {}).get("launch_us")


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def run(tasks: list[Path], device: str, keep: Path, measure: bool, tunables: dict | None, log=print,
        budget_s: float | None = None, on_row=None):
    import harness

    rows = []
    for path in _in_budget(tasks, rows, budget_s, on_row, log):
        name = path.stem
        t0 = time.time()
        try:
            res = codegen.lower(path.read_text(), tunables=tunables, target="cuda")
        except Exception as e:  # a compiler bug fails this task, not the suite
            res = codegen.Lowering(False, reason=f"codegen error: {type(e).__name__}: {e}")
        t_lower = time.time() - t0
        row = {"task": name, "family": family(name), "lower_s": round(t_lower, 2), "kernels": len(res.kernels)}
        if not res.ok:
            row.update(verdict="unsupported", detail=res.reason)
            rows.append(row)
            log(f"{name:45s} lowering failed: {res.reason}")
            continue
        cand = keep / f"{name}_generated.py"
        cand.write_text(res.code)
        try:
            v = harness.verify(str(path), str(cand), device=device, measure=measure, timeout_s=600.0)
        except Exception as e:  # a harness input error is this task's result, not the suite's end
            row.update(verdict="error", detail=f"{type(e).__name__}: {e}")
            rows.append(row)
            log(f"{name:45s} harness error: {e}")
            continue
        rows.append(_judged(row, v, log, t0))
    return rows


def _in_budget(tasks: list[Path], rows: list, budget_s: float | None, on_row, log):
    """The tasks to run, in order, while the time budget lasts; the table so far saved before each."""
    start = time.time()
    for path in tasks:
        if budget_s is not None and time.time() - start > budget_s:
            log(f"{path.stem:45s} skipped: time budget of {budget_s:.0f}s spent")
            continue
        if on_row is not None and rows:
            on_row(rows)
        yield path


_CONTENDED = {True: "yes", False: "no", "unchecked": "unchecked"}


def _contended(v) -> bool | str | None:
    """True / False as the judge saw other work on the GPU while timing; "unchecked" where it
    timed but could not look (NVML); None where nothing was timed."""
    timings = v.timings or {}
    if "contended" not in timings:
        return None
    return "unchecked" if timings["contended"] is None else timings["contended"]


def _judged(row: dict, v, log, t0: float) -> dict:
    """`row` completed from verdict `v`, and logged."""
    roof = v.roofline or {}
    row.update(verdict=v.status, detail="" if v.accepted else v.summary[:200],
               eager_ms=_ms(v, "eager"), compile_ms=_ms(v, "compile"), ours_ms=_ms(v, "candidate"),
               vs_eager=v.speedup_vs_eager, vs_compile=v.speedup_vs_compile,
               gbps=roof.get("achieved_gbps"), peak_frac=roof.get("bandwidth_fraction"),
               tflops=roof.get("achieved_tflops"), compute_frac=roof.get("compute_fraction"),
               max_abs_err=v.max_abs_err, device_name=v.device_name, launch_us=_launch_us(v),
               footprint_gb=_memory_gb(v)[0], peak_gb=_memory_gb(v)[1],
               contended=_contended(v), phase_s=v.phase_s)
    name = row["task"]
    log(f"{name:45s} {v.status:12s} ours={_fmt(row['ours_ms'])}ms eager={_fmt(row['eager_ms'])}ms "
        f"compile={_fmt(row['compile_ms'])}ms x{_fmt(row['vs_eager'], 2)} / x{_fmt(row['vs_compile'], 2)} "
        f"({time.time() - t0:.0f}s{_slow_phases(v.phase_s)})")
    return row


def run_via_cli(tasks: list[Path], device: str, keep: Path, workdir: Path, log=print,
                budget_s: float | None = None, on_row=None, timeout_s: float = CLI_TIMEOUT_S):
    """Each task through the product as a user runs it, `akg-op run --task T --yes` (task validation,
    confirm_task, generation with its fix loop, the judge, integration, the report), one at a time;
    the row from the final verdict of the session it leaves in `workdir`."""
    from harness.verdict import Verdict

    rows = []
    backend = "cpu" if device == "cpu" else "cuda"
    env = dict(os.environ)
    if device.startswith("cuda:"):  # akg-op runs on the first visible GPU: make it this one
        index = int(device.split(":", 1)[1])
        visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        env["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
    for path in _in_budget(tasks, rows, budget_s, on_row, log):
        name = path.stem
        t0 = time.time()
        sessions = workdir / name
        command = [sys.executable, str(HERE.parent / "cli.py"), "run", "--task", str(path), "--yes",
                   "--backend", backend, "--workdir", str(sessions), "--out", str(keep)]
        row = {"task": name, "family": family(name)}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            row.update(verdict="timeout", detail=f"akg-op run took over {timeout_s:.0f}s")
            rows.append(row)
            log(f"{name:45s} timeout after {timeout_s:.0f}s")
            continue
        summaries = sorted(sessions.glob("*/output/kernelgen_*/summary.json"), key=lambda f: f.stat().st_mtime)
        final = json.loads(summaries[-1].read_text()).get("final_verdict") if summaries else None
        if done.returncode != 0 or not final:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            row.update(verdict="error", detail=f"akg-op run exited {done.returncode}: {said[-1] if said else ''}"[:400])
            rows.append(row)
            log(f"{name:45s} {row['detail']}")
            continue
        rows.append(_judged(row, Verdict.from_dict(final), log, t0))
    return rows


def _slow_phases(phase_s: dict | None) -> str:
    """": trials 5, timing 21": where a judgement's time went, phases of a second or more."""
    slow = [f"{name} {seconds:.0f}" for name, seconds in (phase_s or {}).items() if seconds >= 1]
    return ": " + ", ".join(slow) if slow else ""


def _geomean(values):
    values = [v for v in values if v]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def table(rows: list[dict], device: str, command: str) -> str:
    accepted = sum(r["verdict"] == "accepted" for r in rows)
    dev = next((r.get("device_name") for r in rows if r.get("device_name")), device)
    out = [f"## Embedded generator suite ({dev})", "",
           f"`{command}`", "",
           f"Accepted: **{accepted}/{len(rows)}** ({100.0 * accepted / max(len(rows), 1):.1f} %).", ""]
    fams = sorted({r["family"] for r in rows})
    if any(r.get("ours_ms") for r in rows):
        out += ["| family | tasks | accepted | geomean vs eager | geomean vs compile |", "|---|---|---|---|---|"]
        for f in fams:
            fr = [r for r in rows if r["family"] == f]
            out.append(f"| {f} | {len(fr)} | {sum(r['verdict'] == 'accepted' for r in fr)} | "
                       f"{_fmt(_geomean([r.get('vs_eager') for r in fr if r['verdict'] == 'accepted']), 2)} | "
                       f"{_fmt(_geomean([r.get('vs_compile') for r in fr if r['verdict'] == 'accepted']), 2)} |")
        out.append("")
    peak_kind = "device" if device.startswith("cuda") else "host"
    out += ["| task | verdict | kernels | eager ms | compile ms | ours ms | vs eager | vs compile | GB/s | % of peak "
            f"| launch µs | footprint GB | peak {peak_kind} GB | contended |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        frac = r.get("peak_frac")
        out.append(f"| {r['task']} | {r['verdict']} | {r.get('kernels', '-')} | {_fmt(r.get('eager_ms'))} | "
                   f"{_fmt(r.get('compile_ms'))} | {_fmt(r.get('ours_ms'))} | {_fmt(r.get('vs_eager'), 2)} | "
                   f"{_fmt(r.get('vs_compile'), 2)} | {_fmt(r.get('gbps'), 0)} | "
                   f"{'-' if frac is None else f'{100 * frac:.0f}'} | {_fmt(r.get('launch_us'), 0)} | "
                   f"{_fmt(r.get('footprint_gb'), 2)} | {_fmt(r.get('peak_gb'), 2)} | "
                   f"{_CONTENDED.get(r.get('contended'), '-')} |")
    failed = [r for r in rows if r["verdict"] != "accepted"]
    if failed:
        out += ["", "Not accepted:", ""]
        out += [f"- {r['task']}: {r['verdict']}: {r.get('detail', '')}" for r in failed]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_suite")
    p.add_argument("--device", default="cpu", help="cpu (interpreter, shrunk shapes) or cuda[:N]")
    p.add_argument("--out", default=None, help="markdown file for the table")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    p.add_argument("--tasks", default=str(HERE / "tasks"))
    p.add_argument("--only", action="append", default=[], help="run tasks whose name contains this")
    p.add_argument("--skip", action="append", default=[], help="skip tasks whose name contains this")
    p.add_argument("--keep", default=None, help="directory for the generated files")
    p.add_argument("--no-measure", action="store_true")
    p.add_argument("--tunables", default=None)
    p.add_argument("--budget-s", type=float, default=None, help="start no task after this many seconds")
    p.add_argument("--via-cli", default=None, metavar="WORKDIR",
                   help="run each task through `akg-op run --task T --yes`, its sessions under WORKDIR")
    a = p.parse_args(argv)
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # stop before any task rather than fail each of them
            print(f"error: --device {a.device} but this machine has no CUDA device; nothing was run "
                  "(use --device cpu for the interpreter suite)", file=sys.stderr)
            return 2
    tasks = sorted(Path(a.tasks).glob("*.py"))
    tasks = [t for t in tasks if not t.name.startswith("_")]
    if a.only:  # in the order the patterns were given
        tasks = sorted((t for t in tasks if any(matches(t, s, tasks) for s in a.only)),
                       key=lambda t: (min(i for i, s in enumerate(a.only) if matches(t, s, tasks)), t.stem))
    if a.skip:
        tasks = [t for t in tasks if not any(s in t.stem for s in a.skip)]
    keep = Path(a.keep) if a.keep else Path(a.out or "bench_out.md").resolve().parent / "generated"
    keep.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.run_suite " + " ".join(argv if argv is not None else sys.argv[1:])

    def save(rows):  # after every task, so a run cut short still leaves its table
        if a.out:
            Path(a.out).write_text(table(rows, a.device, command))
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1, default=str))

    if a.via_cli:
        if a.no_measure or a.tunables:
            print("error: --via-cli runs the product as a user does: without --no-measure and --tunables",
                  file=sys.stderr)
            return 2
        rows = run_via_cli(tasks, a.device, keep, Path(a.via_cli).resolve(), budget_s=a.budget_s, on_row=save)
    else:
        rows = run(tasks, a.device, keep, not a.no_measure, json.loads(a.tunables) if a.tunables else None,
                   budget_s=a.budget_s, on_row=save)
    text = table(rows, a.device, command)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
