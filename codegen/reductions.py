"""Reductions over a row kernel's columns: on one register tile of whole rows (persistent), in a
loop over column blocks with per-lane accumulators (looped: online softmax statistics, Welford
variances, per-lane argmax; reductions of several inputs over the same rows share one loop), or
inlined combines of split partials. Scans and the column loop itself: scans.py.

NaN propagates as in torch: float max/min combine with `maximum_nan`/`minimum_nan`, and the
first NaN of a row wins an argmax/argmin.
"""
from __future__ import annotations

import re

from . import ir
from .ir import Node
from .kernels import reductions_feeding
from .scope import NeedMaterialize, Scope, _deps


MAX_INLINE_PARTS = 16  # a combine of more partials gets its own (small) kernel: every program of a
                       # consumer would otherwise redo the loads of its rows' partials

_COMBINE = {"sum": "tl.sum", "mean": "tl.sum", "var": "tl.sum", "amax": "tl.max", "amin": "tl.min",
            "any": "tl.max", "all": "tl.min", "prod": None}


def _neutral(op: str, is_int: bool) -> str:
    if is_int and op in ("amax", "amin", "argmax", "argmin"):
        return "-9223372036854775807" if op in ("amax", "argmax") else "9223372036854775807"
    return {"sum": "0", "mean": "0", "var": "0", "prod": "1", "amax": '-float("inf")',
            "amin": 'float("inf")', "argmax": '-float("inf")', "argmin": 'float("inf")',
            "any": "0", "all": "1", "sumexp": "0", "wmean": "0", "wm2": "0", "wcount": "0"}[op]


# torch's max/min propagate NaN; tl.max/tl.maximum do not promise to. Float max/min reductions
# combine with these helpers (emitted into the file when used), element updates pass the flag.
NAN_COMBINE = {"amax": "maximum_nan", "amin": "minimum_nan", "argmax": "maximum_nan", "argmin": "minimum_nan"}
HELPERS = {
    "multiply": "def multiply(a, b):\n    return a * b",
    "maximum_nan": "def maximum_nan(a, b):\n    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)",
    "minimum_nan": "def minimum_nan(a, b):\n    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)",
}


def extremum(op: str, a: str, b: str, is_int: bool) -> str:
    """max/min of two values as torch computes it: a NaN operand makes the result NaN."""
    fn = "tl.maximum" if op in ("amax", "argmax", "any") else "tl.minimum"
    if is_int or op in ("any", "all"):
        return f"{fn}({a}, {b})"
    return f"{fn}({a}, {b}, propagate_nan=tl.PropagateNan.ALL)"


def _acc_type(op: str, is_int: bool) -> str:
    if op in ("any", "all"):
        return "tl.int32"
    if is_int and op in ("sum", "prod", "amax", "amin", "argmax", "argmin"):
        return "tl.int64"
    return "tl.float32"




class RowReductions:
    """The reduction and scan methods of emit.Kernel (a mixin: they use its values and scopes)."""

    def _row_key(self, node: Node, idx, dims, keepdim):
        """The kept part of idx if it addresses this kernel's rows, else None."""
        if self.row_vars is None:
            return None
        kept = [e for d, (e, _) in enumerate(idx) if not (keepdim and d in dims)]
        if keepdim and any(idx[d][0] != "0" for d in dims):
            return None
        want = [e for e, _ in self.row_vars]
        if [e for e in kept] != want:
            # size-1 kept dims index as "0" on both sides; compare the rest
            return None
        return tuple(kept)

    def reduction(self, node: Node, idx):
        x = node.inputs[0]
        dims = node.attrs["dims"]
        if not (self.row_vars is None or tuple(x.shape) != tuple(self.F) or list(dims) != list(self.A)
                or self._row_key(node, idx, dims, node.attrs.get("keepdim", False)) is None):
            return self.reduce(node.op, x, node), "r"
        if node.attrs.get("combine") and self.kind in ("row", "pointwise"):
            out = self.combine(node, idx)
            if out is not None:
                return out
        raise NeedMaterialize(node)

    def full_idx(self):
        it_r = iter(self.row_vars)
        it_c = iter(self.col_vars)
        return [next(it_c) if d in self.A else next(it_r) for d in range(len(self.F))]

    # -- the combine of a split reduction's partials, inlined where its value is needed ------------
    def combine(self, node: Node, idx):
        """node reduces a small partials tensor (a split reduction's [rows, SPLIT] buffer, or a
        layout split's [outer, rows]) over one dim. Where node's index depends on the rows alone
        (or on nothing), each program loads the few partials of its rows and combines them itself,
        in an unrolled loop over the partials on [BLOCK_M, 1] values (the layout of the rows: no
        layout conversion of the program's tile): no kernel and no buffer for the combined value.
        None when that does not apply."""
        q = node.inputs[0]
        dims = node.attrs["dims"]
        deps = _deps(*[d for _, d in idx])
        if len(dims) != 1 or "c" in deps or "p" in deps or (self.row_vars is None and deps):
            return None
        d = dims[0]
        size = q.shape[d]
        hint = q.hint[d] if d < len(q.hint) else None
        if not isinstance(hint, int) or hint > MAX_INLINE_PARTS or node.op not in _COMBINE:
            return None
        # emitted before any loop over other partials (its index does not depend on theirs)
        outer, base = self.scope, self.part_base or self.scope
        saved = (self.part_base, self.part_ok)
        if re.fullmatch(r"\d+", size):
            count, self.part_ok = size, None
        else:
            count = f"PARTS{len(self.constexprs)}"
            self.constexprs[count] = f"triton.next_power_of_2({size})"
        part = self.tmp("part")
        is_int = not q.dtype.is_floating_point
        acc_t = "tl.int64" if is_int and node.op in ("sum", "prod") else "tl.float32"
        if is_int and node.op in ("amax", "amin"):
            acc_t = "tl.int64"
        neutral = _neutral(node.op, is_int)
        acc = self.tmp(node.op)
        shape = "[BLOCK_M, 1]" if self.row_vars is not None else "[]"
        base.lines.append(f"{acc} = tl.full({shape}, {neutral}, {acc_t})")
        body = Scope(parent=base)
        self.scope, self.part_base = body, base
        if count != size:  # a power-of-two count of partials, the last ones past the end
            self.part_ok = self.tmp("in_range")
            body.lines.append(f"{self.part_ok} = tl.full({shape}, {part}, tl.int32) < {size}")
        if node.attrs.get("keepdim"):
            q_idx = [(part, "p") if i == d else idx[i] for i in range(len(q.shape))]
        else:
            it = iter(idx)
            q_idx = [(part, "p") if i == d else next(it) for i in range(len(q.shape))]
        v, vd = self.value(q, q_idx)
        mask = self.mask(vd.replace("c", ""))
        m = v if mask is None else f"tl.where({mask}, {v}, {neutral})"
        m = f"{m}.to({acc_t})"
        if node.op == "prod":
            upd = f"{acc} * {m}"
        elif node.op in ("amax", "any", "amin", "all"):
            upd = extremum(node.op, acc, m, acc_t != "tl.float32")
        else:
            upd = f"{acc} + {m}"
        body.lines.append(f"{acc} = {upd}")
        base.lines.append(f"for {part} in tl.static_range({count}):")
        base.lines.extend("    " + l for l in body.lines + body.tail)
        self.part_base, self.part_ok = saved
        self.scope = outer
        return acc, deps

    # -- reductions over this kernel's rows --------------------------------------------------------
    def reduce(self, op: str, x: Node, node: Node | None) -> str:
        key = (op, id(x), node.attrs.get("correction") if node is not None else None)
        if key in self.reduced:
            return self.reduced[key]
        if op == "mean" and node is not None and node.attrs.get("split"):
            op = "sum"  # a partial: the combining kernel divides by the whole row's length
        if self.strategy == "persistent":
            res = self._reduce_tile(op, x, node)
            self.reduced[key] = res
            return res
        split = node.attrs.get("split") if node is not None else None
        self._reduce_loop([(x, [(op, node)] + self._group(x, split))] + self._loop_mates(x, split))
        return self.reduced[key]

    def _group(self, x: Node, split) -> list:
        """The other reductions of x over this kernel's dims that this kernel computes: one loop
        (one read of x) accumulates them all."""
        out = []
        for n in self.groups.get(id(x), []):
            if list(n.attrs["dims"]) != list(self.A) or n.attrs.get("split") != split:
                continue
            if n in self.materialized and n not in self.outputs:
                continue
            out.append((n.op, n))
        return out

    def _loop_mates(self, x: Node, split) -> list:
        """Reductions of other inputs over the same rows that this kernel needs and whose inputs
        need no reduction themselves (a loss's sums beside its log_softmax statistics, see
        row_sums.py): the same loop accumulates them, one read of each row."""
        out, seen = [], {id(x)}
        for r in self._needed_reductions():
            y = r.inputs[0]
            if (id(y) in seen or tuple(y.shape) != tuple(x.shape) or list(r.attrs["dims"]) != list(self.A)
                    or r.attrs.get("split") != split or r.attrs.get("combine")
                    or reductions_feeding(y, self.materialized)
                    or (r.op, id(y), r.attrs.get("correction")) in self.reduced):
                continue
            seen.add(id(y))
            out.append((y, [(r.op, r)] + self._group(y, split)))
        return out

    def _needed_reductions(self) -> list:
        """The reductions this kernel's outputs are computed from (not read from memory)."""
        return [r for o in self.outputs for r in reductions_feeding(o, self.materialized) if r.kind == ir.REDUCTION]

    def _reduce_tile(self, op: str, x: Node, node: Node | None) -> str:
        """A reduction over whole rows held in one register tile."""
        outer = self.scope
        self.scope = self.tile
        is_int = not x.dtype.is_floating_point
        acc_t = _acc_type(op, is_int)
        neutral = _neutral(op, is_int)
        mask = f"{self.row_mask} & col_mask"
        res = self.tmp(op)
        if op in ("var", "wm2"):
            mean = self.reduce("mean", x, None)
            v, _ = self.value(x, self.full_idx())
            d = self.assign(f"({v} - {mean})", "centered")
            m = self.assign(f"tl.where({mask}, {d} * {d}, 0)", "m")
            corr = node.attrs.get("correction", 1.0) if op == "var" else None
            if corr is None:
                self.emit(f"{res} = tl.sum({m}, axis=1)[:, None]")
            else:
                count = "n_cols" if not corr else f"(n_cols - {corr})"
                self.emit(f"{res} = tl.sum({m}, axis=1)[:, None] / {count}")
        elif op == "wmean":
            res = self.reduce("mean", x, None)
        elif op == "mean" and not is_int:
            res = self.assign(f"{self.reduce('sum', x, None)} / n_cols", "mean")
        elif op == "wcount":
            self.emit(f"{res} = tl.zeros([BLOCK_M, 1], tl.float32) + n_cols")
        elif op == "sumexp":
            # whole rows: exactly the model's sum(exp(x - max)), sharing its exp with the epilogue
            mx = self.reduce("amax", x, None)
            src = node.attrs.get("orig") if node is not None else None
            if src is not None:
                e, _ = self.value(src, self.full_idx())
            else:
                v, _ = self.value(x, self.full_idx())
                e = self.assign(f"tl.exp({v} - {mx})", "e")
            m = self.assign(f"tl.where({mask}, {e}, 0)", "m")
            self.emit(f"{res} = tl.sum({m}, axis=1)[:, None]")
        else:
            v, _ = self.value(x, self.full_idx())
            cast = "" if acc_t == "tl.float32" and not is_int else f".to({acc_t})"  # float values are fp32 already
            m = self.assign(f"tl.where({mask}, {v}, {neutral}){cast}", "m")
            if op in ("argmax", "argmin") and is_int:
                self.emit(f"{res} = tl.{op}({m}, axis=1)[:, None]")
            elif op in ("argmax", "argmin"):
                # the first NaN wins, as in torch; else the first best value
                self.helpers.add(NAN_COMBINE[op])
                best = self.assign(f"tl.reduce({m}, 1, {NAN_COMBINE[op]})[:, None]", "best")
                big = "9223372036854775807" if self.large else "2147483647"
                self.emit(f"{res} = tl.min(tl.where(({m} == {best}) | ({m} != {m}), cols, {big}), axis=1)[:, None]")
            elif op in ("amax", "amin") and not is_int:
                self.helpers.add(NAN_COMBINE[op])
                self.emit(f"{res} = tl.reduce({m}, 1, {NAN_COMBINE[op]})[:, None]")
            elif op == "prod":
                self.helpers.add("multiply")
                self.emit(f"{res} = tl.reduce({m}, 1, multiply)[:, None]")
            else:
                self.emit(f"{res} = {_COMBINE[op]}({m}, axis=1)[:, None]")
            if op == "mean":
                self.emit(f"{res} = {res} / n_cols")
        self.scope = outer
        return res

    def _reduce_loop(self, loops: list) -> None:
        """Reductions over the kernel's columns in one loop of BLOCK_N-wide column blocks, for
        each (x, members) of `loops`: per-lane accumulators in the loop, one combine across lanes
        after it. Maximum and sum of exponentials run online (softmax: one read of x), variances
        as per-lane Welford."""
        outer = self.scope
        section = Scope(parent=self.root)
        self.sections.insert(self.sections.index(self.current_section), section)
        body = Scope(parent=section)
        self.scope = body
        self._open_cols(body, "col_start")
        # reductions these need go before it
        caller_section, self.current_section = self.current_section, section
        post = []
        self._loop_counts = None  # (per-lane counts, 1 / block number, row counts): one set a loop
        done = [(x, members, self._accumulate(x, members, section.lines, post)) for x, members in loops]
        self._close_loop(section, body, "col_start")
        self.current_section = caller_section
        section.lines.extend(post)
        for x, members, results in done:
            for op, node in members:
                corr = node.attrs.get("correction") if node is not None else None
                if (op, id(x), corr) in self.reduced:
                    continue
                if op == "var":
                    res = self.tmp("var")
                    section.lines.append(f"{res} = {results['wm2']} / (n_cols - {corr if corr is not None else 1.0})")
                else:
                    res = results["sum" if op == "mean" and node is not None and node.attrs.get("split") else op]
                self.reduced[(op, id(x), corr)] = res
        self.scope = outer

    def _accumulate(self, x: Node, members: list, init: list, post: list) -> dict:
        """The loop body's accumulation of x's reductions: their initial values go to `init`,
        their combines after the loop to `post`; returns op -> the name of its result."""
        v, _ = self.value(x, self.full_idx())
        mask = f"{self.row_mask} & col_mask"
        is_int = not x.dtype.is_floating_point
        ops = {}
        for op, node in members:
            if op == "mean" and node is not None and node.attrs.get("split"):
                op = "sum"
            corr = node.attrs.get("correction") if node is not None else None
            ops.setdefault(op, set()).add(corr)
        tile = "[BLOCK_M, BLOCK_N]"
        lane_idx_t = "tl.int64" if self.large else "tl.int32"
        online = "sumexp" in ops
        welford = bool({"var", "wmean", "wm2", "wcount"} & set(ops))
        results = {}
        if online:
            om, os_ = self.tmp("run_max"), self.tmp("run_sum")
            init += [f"{om} = tl.full({tile}, -3.4028234663852886e38, tl.float32)",
                     f"{os_} = tl.zeros({tile}, tl.float32)"]
            m = self.assign(f"tl.where({mask}, {v}, -float(\"inf\")).to(tl.float32)", "m")
            d, e, up = self.tmp("d"), self.tmp("e"), self.tmp("up")
            self.emit(f"{d} = {m} - {om}")
            self.emit(f"{e} = tl.exp(-tl.abs({d}))  # exp(min - max) of the element and the running max")
            self.emit(f"{up} = {d} > 0")
            self.emit(f"{os_} = tl.where({up}, {os_} * {e} + 1.0, {os_} + {e})")
            self.emit(f"{om} = tl.where({up}, {m}, {om})")
            mx, sx = self.tmp("amax"), self.tmp("sumexp")
            post += [f"{mx} = tl.max({om}, axis=1)[:, None]",
                     f"{sx} = tl.sum({os_} * tl.exp({om} - {mx}), axis=1)[:, None]"]
            results["sumexp"] = sx
            if "amax" in ops:
                results["amax"] = mx
        if welford:
            self.welford_loop = True
            # the per-lane counts are the loop's, shared by every variance it accumulates (same
            # columns, same mask): the first variance of the loop makes them
            first = self._loop_counts is None
            wn = self.tmp("w_n") if first else self._loop_counts[0]
            wmean, wm2 = self.tmp("w_mean"), self.tmp("w_m2")
            init += ([f"{wn} = tl.zeros({tile}, tl.float32)"] if first else []) + [
                f"{wmean} = tl.zeros({tile}, tl.float32)", f"{wm2} = tl.zeros({tile}, tl.float32)"]
            vf = self.assign(f"{v}.to(tl.float32)", "v") if is_int else v
            inv = self.tmp("inv") if first else self._loop_counts[1]
            d = self.tmp("d")
            if first:  # every lane still in range has seen one element per block so far
                self.emit(f"{inv} = 1.0 / (col_start // BLOCK_N + 1)")
            self.emit(f"{d} = {vf} - {wmean}")
            self.emit(f"{wmean} = tl.where({mask}, {wmean} + {d} * {inv}, {wmean})")
            self.emit(f"{wm2} = tl.where({mask}, {wm2} + {d} * ({vf} - {wmean}), {wm2})")
            if first:
                self.emit(f"{wn} = {wn} + tl.where({mask}, 1.0, 0.0)")
            n = self.tmp("count") if first else self._loop_counts[2]
            mean, dm, m2 = self.tmp("mean"), self.tmp("dm"), self.tmp("m2")
            post += ([f"{n} = tl.sum({wn}, axis=1)[:, None]"] if first else []) + [
                     f"{mean} = tl.sum({wn} * {wmean}, axis=1)[:, None] / tl.maximum({n}, 1.0)",
                     f"{dm} = {wmean} - {mean}",
                     f"{m2} = tl.sum({wm2} + {wn} * {dm} * {dm}, axis=1)[:, None]"]
            self._loop_counts = (wn, inv, n)
            results.update(wcount=n, wmean=mean, wm2=m2)
        for op in ops:
            if op in results or op in ("var", "sumexp"):
                continue
            acc_t = _acc_type(op, is_int)
            neutral = _neutral(op, is_int)
            cast = "" if acc_t == "tl.float32" and not is_int else f".to({acc_t})"  # float values are fp32 already
            m = self.assign(f"tl.where({mask}, {v}, {neutral}){cast}", "m")
            acc = self.tmp("acc")
            res = self.tmp(op)
            if op in ("argmax", "argmin"):
                # per lane: the best value and its column (strictly better: the first one wins)
                cmp = ">" if op == "argmax" else "<"
                idx = self.tmp("acc_i")
                init += [f"{acc} = tl.full({tile}, {neutral}, {acc_t})", f"{idx} = tl.zeros({tile}, {lane_idx_t})"]
                better = self.tmp("better")
                if is_int:
                    self.emit(f"{better} = {m} {cmp} {acc}")
                else:  # a lane's first NaN beats any number, as in torch
                    self.emit(f"{better} = ({m} {cmp} {acc}) | (({m} != {m}) & ({acc} == {acc}))")
                # cols are 64-bit in a kernel's INT64_INDEX variant: the lane index keeps its type
                self.emit(f"{idx} = tl.where({better}, cols, {idx})" + ("" if self.large else f".to({lane_idx_t})"))
                self.emit(f"{acc} = tl.where({better}, {m}, {acc})")
                best = self.tmp("best")
                big = "9223372036854775807" if self.large else "2147483647"
                if is_int:
                    red = "tl.max" if op == "argmax" else "tl.min"
                    post += [f"{best} = {red}({acc}, axis=1)[:, None]",
                             f"{res} = tl.min(tl.where({acc} == {best}, {idx}, {big}), axis=1)[:, None]"]
                else:
                    self.helpers.add(NAN_COMBINE[op])
                    post += [f"{best} = tl.reduce({acc}, 1, {NAN_COMBINE[op]})[:, None]",
                             f"{res} = tl.min(tl.where(({acc} == {best}) | ({acc} != {acc}), {idx}, {big}), axis=1)[:, None]"]
            else:
                init.append(f"{acc} = tl.full({tile}, {neutral}, {acc_t})")
                if op in ("sum", "mean"):
                    upd = f"{acc} + {m}"
                elif op == "prod":
                    upd = f"{acc} * {m}"
                else:
                    upd = extremum(op, acc, m, is_int)
                self.emit(f"{acc} = {upd}")
                if op == "prod":
                    self.helpers.add("multiply")
                    post.append(f"{res} = tl.reduce({acc}, 1, multiply)[:, None]")
                elif op in ("amax", "amin") and not is_int:
                    self.helpers.add(NAN_COMBINE[op])
                    post.append(f"{res} = tl.reduce({acc}, 1, {NAN_COMBINE[op]})[:, None]")
                else:
                    post.append(f"{res} = {_COMBINE[op]}({acc}, axis=1)[:, None]")
                if op == "mean":
                    post.append(f"{res} = {res} / n_cols")
            results[op] = res
        return results
