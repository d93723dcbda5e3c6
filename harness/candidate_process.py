"""The judge's handle on the candidate's process: fork it (before CUDA is touched, so both can use
the GPU), send it requests with a deadline, and turn its death, silence or malformed replies into
rejections. The child keeps only stdio and its end of the socket before it runs any candidate code."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time

from harness import isolation
from harness.channel import Channel, ChannelClosed, ChannelError
from harness.errors import Rejection, error_text


class CandidateProcess:
    """The judge's handle on the candidate's process: fork it, send requests, collect its end."""

    def __init__(self, on_gpu: bool, memory_limit_mb: int | None, drop_privileges: bool, deadline: float,
                 timeout_s: float, kernel_cache: str | None = None):
        self.on_gpu, self.deadline, self.timeout_s = on_gpu, deadline, timeout_s
        # The candidate's working directory, made and removed here: inside, the candidate mounts a
        # tmpfs over it in a namespace of its own, so it cannot remove it, and every judgement left
        # an empty directory in the temporary folder (thousands a day of searches).
        self.private_dir = tempfile.mkdtemp(prefix="akg-candidate-")
        parent_end, child_end = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:  # the candidate: keep only stdio and its end of the socket
            try:
                parent_end.close()
                keep = child_end.fileno()
                os.closerange(3, keep)
                os.closerange(keep + 1, 65536)
                from harness.candidate_worker import run
                run(child_end, self.private_dir, on_gpu, memory_limit_mb if not on_gpu else None, drop_privileges,
                    kernel_cache)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(70)
        child_end.close()
        self.channel = Channel(parent_end)
        try:
            hello = self._receive("starting the candidate process")
        except Rejection:
            self.close()
            raise
        self.sandbox_notes = list(hello.get("sandbox_notes") or [])

    def _receive(self, what: str) -> dict:
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise socket.timeout()
            return self.channel.recv(timeout_s=left)
        except socket.timeout:
            self.kill()
            raise Rejection("timeout", f"no result within {self.timeout_s:g} s while {what} "
                                       "(infinite loop or far too slow?)") from None
        except ChannelClosed:
            raise Rejection(*self._death(what)) from None
        except (ChannelError, ValueError, RuntimeError) as error:
            self.kill()
            raise Rejection("cheat", f"the candidate process sent a malformed message while {what}: "
                                     f"{error_text(error)}") from None

    def request(self, purpose: str, **message) -> dict:
        try:
            self.channel.send(message)
        except ChannelClosed:
            raise Rejection(*self._death(purpose)) from None
        reply = self._receive(purpose)
        if not reply.get("ok"):
            status = reply.get("status")
            status = status if status in ("compile_error", "runtime_error", "oom", "invalid") else "runtime_error"
            raise Rejection(status, str(reply.get("reason") or "the candidate failed")[:1200])
        return reply

    def _death(self, what: str) -> tuple[str, str]:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return "crash", f"the candidate process vanished while {what}"
        self.pid = 0
        if os.WIFSIGNALED(status):
            name = _signal_name(os.WTERMSIG(status))
            if name == "SIGKILL":
                return "oom", f"the candidate process was killed (SIGKILL) while {what}, most likely for using too much memory"
            return "crash", f"the candidate process was killed by {name} while {what} (segfault, abort?)"
        return "crash", f"the candidate process exited with code {os.WEXITSTATUS(status)} while {what} " \
                        "(sys.exit or os._exit in candidate code?)"

    def kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = 0

    def close(self) -> None:
        if self.pid:
            try:
                self.channel.send({"cmd": "exit"})
            except ChannelClosed:
                pass
        self.kill()
        isolation.kill_descendants()  # daemons it left behind re-parented to us (we are a subreaper)
        self.channel.sock.close()
        shutil.rmtree(self.private_dir, ignore_errors=True)


def _signal_name(number: int) -> str:
    import signal
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
