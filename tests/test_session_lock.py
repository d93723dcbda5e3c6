"""The session lock across processes: a second driver is told "session busy (held by pid …)" and
changes nothing; a lock left by a killed process does not block."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.test_cli import akg, session_id_of

REQUEST = "Generate a relu kernel, input (64, 512), fp32"
HOLD = "import sys, time\nfrom service.lock import session_lock\nwith session_lock(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(600)\n"


def test_busy_while_held_and_free_after_the_holder_is_killed(tmp_path, cli_env):
    sid = session_id_of(akg(["run", REQUEST, "--workdir", str(tmp_path / "w")], cli_env, tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, sid], env=cli_env, cwd=tmp_path,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = akg(["resume", sid, "--answer", "yes"], cli_env, tmp_path)
        assert busy.returncode == 75 and "Traceback" not in busy.stderr
        assert f"session busy (held by pid {holder.pid})" in " ".join(busy.stderr.split())
        status = akg(["status", sid], cli_env, tmp_path)
        assert "waiting at confirm_params" in status.stdout  # the busy answer changed nothing
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops its lock
        holder.wait()
    started = time.monotonic()
    resumed = akg(["resume", sid, "--answer", "no"], cli_env, tmp_path)
    assert resumed.returncode == 0 and "cancelled" in resumed.stdout, resumed.stdout + resumed.stderr
    assert time.monotonic() - started < 120
