"""OS-level isolation for the candidate process (Linux; each step degrades to a recorded note).

- a new network namespace (no interface but a down loopback: no connection leaves it);
- a new mount namespace in which every filesystem is read-only except the candidate's private
  tmpfs (its working directory, HOME, TMPDIR and Triton cache), /dev and /dev/shm (CUDA IPC);
- no privileges: when running as root, the switch to `nobody` where the installation is readable
  by it, else all capabilities dropped (uid 0 without CAP_SYS_PTRACE cannot read the judge's or
  the orchestrator's memory, descriptors or environment through /proc, nor undo the mounts);
- the judge and the orchestrator are non-dumpable, which closes their /proc entries to
  processes of the same user;
- death with its parent (PR_SET_PDEATHSIG), and subreapers above it (judge, fork server) that
  kill every descendant at the end of a job, daemons that setsid'd away included.
"""
from __future__ import annotations

import ctypes
import os
import pwd
import resource
import signal

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522
WRITABLE_MOUNTS = ("/proc", "/sys", "/dev")
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
UNPRIVILEGED_USER = "nobody"
SWITCH_USER = False  # set by the fork server from privilege_drop_works(); children inherit it

_libc = None


def _call(name: str, *args) -> int:
    """A libc call; returns 0 or the errno."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        if getattr(_libc, name)(*[ctypes.c_ulong(a) for a in args]) == 0:
            return 0
        return ctypes.get_errno() or -1
    except (OSError, AttributeError):
        return -1


def _why(errno: int) -> str:
    return os.strerror(errno) if errno > 0 else "not available on this system"


def become_subreaper() -> bool:
    """Orphans of this process's descendants re-parent here instead of to init."""
    return _call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def hide_from_same_user() -> None:
    """Non-dumpable: other processes of the same (non-root) user can no longer open /proc/<pid>/fd,
    /proc/<pid>/mem or /proc/<pid>/environ of this process, nor ptrace it."""
    _call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    encode = lambda text: text.encode() if text is not None else None  # noqa: E731
    if libc.mount(encode(source), encode(target), encode(fstype), flags, None) == 0:
        return 0
    return ctypes.get_errno() or -1


def readonly_filesystem(private_dir: str) -> str | None:
    """In a new mount namespace, make every mount read-only except /proc, /sys, /dev (and below) and
    a fresh tmpfs on private_dir. Returns a note when it could not be done."""
    errno = _call("unshare", CLONE_NEWNS)
    if errno:
        return f"filesystem writable ({_why(errno)})"
    if _mount(None, "/", None, MS_REC | MS_PRIVATE):
        return "filesystem writable (mounts cannot be made private)"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4].replace("\\040", " ") for line in mountinfo]
    failed = [point for point in points if not point.startswith(WRITABLE_MOUNTS)
              and _mount(point, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY)]
    if _mount("tmpfs", private_dir, "tmpfs", 0):
        return "filesystem writable (no private tmpfs)"
    return f"filesystem writable at {', '.join(failed[:3])}" if failed else None


def writable_bind(source: str, target: str) -> str | None:
    """Inside the read-only mount namespace, make `source` writable at `target` (which must exist).
    A bind mount keeps its origin's read-only flag, so it is remounted writable afterwards."""
    if _mount(source, target, None, MS_BIND) or _mount(source, target, None, MS_BIND | MS_REMOUNT):
        return f"no kernel cache ({target} could not be bound)"
    return None


def drop_capabilities() -> str | None:
    """Drop every capability (root stays uid 0 but without the power to override permissions,
    trace other processes or remount)."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in range(64):
            libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if libc.capset(ctypes.byref(Header(LINUX_CAPABILITY_VERSION_3, 0)), (Data * 2)()) != 0:
            return f"runs as root with its capabilities ({_why(ctypes.get_errno())})"
    except (OSError, AttributeError):
        return "runs as root with its capabilities (capset not available)"
    return None


def isolate_network() -> str | None:
    errno = _call("unshare", CLONE_NEWNET)
    return None if errno == 0 else f"network not isolated ({_why(errno)})"


def die_with_parent() -> None:
    _call("prctl", PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def unprivileged_ids() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def drop_privileges(private_dir: str, switch_user: bool) -> str | None:
    """When root: switch to `nobody` if switch_user (the private dir changes owner first), else drop
    every capability. A non-root caller keeps its user (and has no capabilities to drop)."""
    if os.geteuid() != 0:
        return "runs as the calling user (not root)"
    ids = unprivileged_ids()
    if not switch_user or ids is None:
        return drop_capabilities()
    uid, gid = ids
    try:
        for root, dirs, files in os.walk(private_dir):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.chown(name, uid, gid)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    except OSError:
        return drop_capabilities()
    return None


def descendants(root_pid: int) -> list[int]:
    """Every live process below root_pid (by walking /proc's parent links)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def kill_descendants(root_pid: int | None = None, rounds: int = 5) -> int:
    """SIGKILL every process below root_pid (default: this one), including daemons that re-parented
    here; returns how many were killed. Several rounds: a process may fork while we look."""
    root_pid = os.getpid() if root_pid is None else root_pid
    killed = 0
    for _ in range(rounds):
        pids = descendants(root_pid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return killed


def privilege_drop_works() -> bool:
    """Whether a process switched to `nobody` can still read everything a candidate needs (Python's
    standard library, torch, triton and this package): probed once per fork server in a throwaway
    child. False when not root, or when the installation sits under a directory `nobody` cannot enter."""
    if os.geteuid() != 0 or unprivileged_ids() is None:
        return False
    import importlib.util
    needed = [os.path.dirname(os.__file__), os.path.dirname(os.path.dirname(__file__))]
    for name in ("torch", "triton", "numpy"):
        spec = importlib.util.find_spec(name)
        if spec and spec.origin:
            needed.append(os.path.dirname(spec.origin))
    pid = os.fork()
    if pid == 0:
        try:
            uid, gid = unprivileged_ids()
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            ok = all(os.access(path, os.R_OK | os.X_OK) and os.listdir(path) for path in needed)
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


def mapped_bytes() -> int:
    """The address space this process maps now (what RLIMIT_AS counts)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()
