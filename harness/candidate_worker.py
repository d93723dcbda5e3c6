"""The candidate's side of a judgement: a process of its own that imports the candidate, runs it on the
inputs the judge sends and sends back only its outputs and its instrumentation.

It holds nothing worth stealing: no reference, no verdict, no secrets (allow-listed environment), no
handle on the verdict's pipe, and (see harness.isolation) no network, no other user's files and a
private working directory. The judge treats every number it sends as a claim to check: outputs
are compared with the judge's own reference, launches and ATen ops are cross-checked by the ghost
replays the judge evaluates itself, and the hooks are re-checked after every call (`tampered`).
"""
from __future__ import annotations

import contextlib
import os
import resource
import sys
import tempfile
import traceback

import torch

from harness.anticheat import TorchOps, launch_hook_intact, triton_launches
from harness.channel import Channel, ChannelClosed
from harness.errors import classify_exception
from harness import isolation
from harness.interpreter import interpret_like_the_gpu

KEEP_CALLS = 2  # outputs of the last calls held, as a caller would, for the persistence check


def enter_sandbox(private: str, memory_limit_mb: int | None, switch_user: bool,
                  kernel_cache: str | None = None) -> list[str]:
    """Called first thing in the forked candidate process. Returns notes on what could not be applied.
    private: an empty directory, its working directory (the parent made it and removes it: once
    this process is isolated it cannot). kernel_cache: this source's own Triton cache directory
    (harness.kernel_cache), kept across jobs."""
    isolation.die_with_parent()
    isolation.hide_from_same_user()
    notes = [isolation.isolate_network(), isolation.readonly_filesystem(private)]
    os.makedirs(os.path.join(private, "triton_cache"))
    if kernel_cache:
        notes.append(isolation.writable_bind(kernel_cache, os.path.join(private, "triton_cache")))
    os.chdir(private)
    os.environ.update(HOME=private, TMPDIR=private, TRITON_CACHE_DIR=os.path.join(private, "triton_cache"))
    tempfile.tempdir = private
    notes.append(isolation.drop_privileges(private, switch_user))
    if os.geteuid() != 0:  # a fork bomb stays small
        resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))
    if memory_limit_mb:
        limit = isolation.mapped_bytes() + memory_limit_mb * 2**20
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return [note for note in notes if note]


class CandidateWorker:
    def __init__(self, channel: Channel, on_gpu: bool):
        self.channel = channel
        self.on_gpu = on_gpu
        self.device = torch.device("cuda" if on_gpu else "cpu")
        self.model = None
        self.kept: list = []        # outputs of the last KEEP_CALLS calls, newest last
        self.keeping = True         # until the judge has checked the trials' outputs stay intact
        self.named: dict = {}       # outputs the judge asked to hold by name
        self.staged: dict = {}      # GPU input buffers by name, filled by the judge
        self.inputs = None          # the inputs of the last call (timing reuses them)

    def _sync(self) -> None:
        if self.on_gpu:
            torch.cuda.synchronize()

    # -- commands ----------------------------------------------------------------------------------
    def load(self, source: str, filename: str, init_inputs, state_dict) -> dict:
        triton_launches.install()
        path = os.path.join(os.getcwd(), filename)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        try:
            from harness.task_loading import load_module
            module = load_module(path, "candidate")
        except (Exception, SystemExit) as error:
            return _rejection("compile_error", f"the candidate file does not import: {_text(error)}")
        if not hasattr(module, "ModelNew"):
            return _rejection("invalid", "the candidate file defines no ModelNew")
        try:
            torch.manual_seed(0)
            self.model = module.ModelNew(*init_inputs).to(self.device).eval()
        except (Exception, SystemExit) as error:
            return _classified(error, "ModelNew(*get_init_inputs())")
        own = self.model.state_dict()
        if state_dict and own.keys() == state_dict.keys() and all(own[k].shape == state_dict[k].shape for k in own):
            self.model.load_state_dict(state_dict)
        return {"ok": True}

    def stage(self, name: str, specs) -> dict:
        """Allocate GPU buffers for inputs the judge will copy in (see Judge._stage). The buffers
        they replace are given back to the device first: the judge, a process of its own, cannot
        use memory this process's allocator keeps cached."""
        if self.staged.pop(name, None) is not None and name == "call":
            self.inputs = None  # the last call's inputs were these buffers
        torch.cuda.empty_cache()
        self.staged[name] = [torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
                             for shape, dtype in specs]
        return {"ok": True, "buffers": self.staged[name]}

    def forget(self, keep_named: bool = False) -> dict:
        """Drop the outputs held for the persistence checks (they are done) and give the memory back.
        keep_named: the trials' checks are done, the final one (of a named output) is still to come;
        later calls are not held (at benchmark sizes each is gigabytes)."""
        self.kept, self.keeping = [], False
        if not keep_named:
            self.named = {}
        if self.on_gpu:
            torch.cuda.empty_cache()
        return {"ok": True}

    def _resolve(self, value):
        if isinstance(value, dict) and set(value) == {"__staged__"}:
            name, index = value["__staged__"]
            return self.staged[name][index]
        if isinstance(value, (list, tuple)):
            return type(value)(self._resolve(v) for v in value)
        return value

    def call(self, inputs, mode: str, what: str, keep_as: str | None = None) -> dict:
        """mode: "census" (record ATen ops, poison empty allocations), "ghost_a"/"ghost_b" (skip every
        launch, poison every allocation with one of two values) or "plain" (no op recorder at all,
        as when timed)."""
        inputs = self._resolve(inputs) if inputs is not None else self.inputs
        self.inputs = inputs
        ghost = mode.startswith("ghost")
        ops = TorchOps(triton_launches, poison="all_b" if mode == "ghost_b" else "all" if ghost else "empty",
                       count_inside_launches=self.on_gpu)
        before = triton_launches.count
        triton_launches.counting, triton_launches.skip = True, ghost
        try:
            with torch.no_grad(), (ops if mode != "plain" else contextlib.nullcontext()):
                output = self.model(*inputs)
            self._sync()
        except (Exception, SystemExit) as error:
            return _classified(error, what)
        finally:
            triton_launches.counting, triton_launches.skip = False, False
        tampered = self._tampered(ops if mode != "plain" else None)
        reply = {"ok": True, "outputs": output, "launches": triton_launches.count - before,
                 "ops": sorted(ops.compute_ops), "tampered": tampered,
                 "aliases": _aliases(inputs, output)}
        if not self.on_gpu:  # CPU inputs arrived as copies: hand them back for the in-place check
            reply["inputs_after"] = inputs
        if not ghost and self.keeping:
            self.kept = (self.kept + [output])[-KEEP_CALLS:]
        if keep_as:
            self.named[keep_as] = output
        return reply

    def _tampered(self, ops: TorchOps | None) -> str | None:
        if not launch_hook_intact():
            return "Triton's launch hook was replaced"
        if ops is not None and (type(ops).__torch_dispatch__ is not TorchOps.__torch_dispatch__
                                or not ops.entered_and_left):
            return "the ATen op recorder was replaced or bypassed"
        if triton_launches.depth != 0 or triton_launches.counting or triton_launches.skip:
            return "the launch counter's state was changed"
        return None

    def kept_outputs(self, index) -> dict:
        """A call's outputs as held now: -1 the latest, -2 the one before, or a name given at the call."""
        if isinstance(index, str):
            return {"ok": True, "outputs": self.named.get(index)}
        if len(self.kept) < -index:
            return {"ok": True, "outputs": None}
        return {"ok": True, "outputs": self.kept[index]}

    def time(self, calls: int, alternate) -> dict:
        """Time the model with the harness's protocol. Before each timed call the inputs' contents
        become those of the last call (even calls) or `alternate` (odd calls), in place, so a
        result cached by address is wrong half the time; a checksum of every timed call's outputs
        goes back to the judge, which knows what both input sets must give."""
        from harness.compare import flatten
        from harness.timing import L2Flusher, sync_overhead_ms, time_callable
        working = [t for t in flatten(self.inputs) if isinstance(t, torch.Tensor)]
        alternate = self._resolve(alternate)
        sources = [[t.clone() for t in working], [t for t in flatten(alternate) if isinstance(t, torch.Tensor)]]
        checksums = []

        def timed(*args):
            output = self.model(*args)
            timed.last = output
            return output

        def load_inputs(index):
            for target, source in zip(working, sources[index % 2]):
                target.copy_(source)

        def checksum_after_each_call():
            checksums.append(output_checksum(timed.last))
            timed.last = None

        try:
            flush = L2Flusher()
            overhead = sync_overhead_ms(flush)
            launches_before = triton_launches.count
            triton_launches.counting = True
            with torch.no_grad():
                figures = time_callable(timed, self.inputs, flush=flush, overhead_ms=overhead, calls=calls,
                                        after_each=checksum_after_each_call, before_each=load_inputs)
                triton_launches.counting = False
                launches = triton_launches.count - launches_before
                load_inputs(0)
                last = self.model(*self.inputs)
            self._sync()
        except (Exception, SystemExit) as error:
            return _classified(error, "the timing run")
        finally:
            triton_launches.counting = False
        sources = working = timed.last = None
        if self.on_gpu:  # its copy of the inputs and the timed calls' outputs: room for the judge's check
            torch.cuda.empty_cache()
        return {"ok": True, "timing": figures, "checksums": checksums, "outputs": last, "launches": launches}

    def serve(self) -> None:
        handlers = {"load": self.load, "stage": self.stage, "call": self.call, "kept": self.kept_outputs,
                    "forget": self.forget, "time": self.time}
        while True:
            try:
                message = self.channel.recv()
            except ChannelClosed:
                return
            command = message.pop("cmd", None)
            if command == "exit":
                return
            try:
                reply = handlers[command](**message)
            except Exception as error:  # the worker itself failed (an allocation, say): tell the judge, keep serving
                reply = _classified(error, f"the candidate's process ({command})")
            try:
                self.channel.send(reply)
            except Exception as error:  # an output that cannot be sent (e.g. a tensor subclass)
                self.channel.send(_rejection("runtime_error", f"the outputs cannot be handed over: {_text(error)}"))


CHECKSUM_SAMPLE = 1 << 20


def output_checksum(output) -> list[float]:
    """A cheap fingerprint of a call's outputs, to compare every timed call with the calls whose
    outputs the judge checked in full: over a strided sample of at most CHECKSUM_SAMPLE elements
    per tensor (NaN-safe), a sum with pseudo-random signs (so two inputs of the same distribution
    give different sums), the sum of magnitudes (the scale) and the sum of squares."""
    from harness.compare import flatten
    sums = []
    for leaf in flatten(output):
        if isinstance(leaf, torch.Tensor) and leaf.numel():
            flat = leaf.detach().reshape(-1)
            sample = flat[::max(1, flat.numel() // CHECKSUM_SAMPLE)]
            values = torch.nan_to_num(sample.double(), nan=0.0, posinf=1e300, neginf=-1e300)
            index = torch.arange(values.numel(), device=values.device, dtype=torch.int64)
            signs = 1.0 - 2.0 * ((index * 2654435761) >> 13 & 1).double()
            sums += [float((values * signs).sum()), float(values.abs().sum()), float((values * values).sum())]
    return sums


def _aliases(inputs, output) -> list[list]:
    """[output index, "input"|"output", other index] for every output sharing memory with an input or
    with an earlier output."""
    from harness.compare import flatten
    ranges = []
    for kind, leaves in (("input", flatten(inputs)), ("output", flatten(output))):
        for index, leaf in enumerate(leaves):
            if isinstance(leaf, torch.Tensor) and leaf.numel():
                storage = leaf.untyped_storage()
                ranges.append((kind, index, storage.data_ptr(), storage.data_ptr() + storage.nbytes()))
    found = []
    for position, (kind, index, start, end) in enumerate(ranges):
        if kind != "output":
            continue
        for other_kind, other_index, other_start, other_end in ranges[:position]:
            if start < other_end and other_start < end:
                found.append([index, other_kind, other_index])
    return found


def _text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 400 else text[:400] + "…"


def _rejection(status: str, reason: str) -> dict:
    return {"ok": False, "status": status, "reason": reason}


def _classified(error: BaseException, what: str) -> dict:
    rejection = classify_exception(error, what)
    return {"ok": False, "status": rejection.status, "reason": rejection.reason,
            "traceback": traceback.format_exc()[-3000:]}


def run(sock, private: str, on_gpu: bool, memory_limit_mb: int | None, switch_user: bool,
        kernel_cache: str | None = None) -> None:
    """Body of the candidate process (forked by the judge): isolate, serve, exit."""
    notes = enter_sandbox(private, memory_limit_mb, switch_user, kernel_cache)
    channel = Channel(sock)
    channel.send({"ready": True, "sandbox_notes": notes, "pid": os.getpid()})
    if on_gpu:  # make this process's CUDA context while the judge makes its own, not after
        torch.cuda.init()
        torch.empty(1, device="cuda")
    else:
        interpret_like_the_gpu()
    CandidateWorker(channel, on_gpu).serve()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
