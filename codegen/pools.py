"""Windowed pooling (max and average, 1-D to 3-D) for emit.Kernel: each output element folds the
window of its source that starts at output index * stride - padding.

Where the source is read straight from memory (an input, or a tensor an earlier kernel stored, or
either viewed with unit dims, as a 1-D pool's trace does), the window's first element is addressed
once and each tap is a constant offset from it, its load masked where the tap falls in the padding:
no clamped index and no select per tap and element (public level-1 44, a 1-D average pool, 2.52 ->
1.43 ms on an H200, with the loads one element a thread where that coalesces them). A stride-2
last dim reads the two taps that start at output index * 2 as one contiguous pair (a vector load;
tunable pointwise.pool_pairs). On an H100 a 2-D max pool over 4.3 GB went from 2.47 to 1.76 ms (0.71x
to 0.99x torch.compile; bench/results/h100_large_speed_studies.md). Elsewhere (the window of a
computed value, an integer source) each tap's indices are clamped into the source and the padding
selected away. A window of 8 taps or more that moves 4 or more along the last dim reads each output's
taps there as one vector instead (a run; tunable pointwise.pool_runs): tap by tap, each warp's load
spanned as many lines as the stride.
"""
from __future__ import annotations

from . import ir
from .ir import Node
from .pointwise import compute_type
from .reductions import NAN_COMBINE, extremum
from .rewrites import next_pow2
from .scope import Scope, _deps, _prod


class WindowPools:
    """The pooling method of emit.Kernel (a mixin)."""

    def pool(self, node: Node, idx):
        a = node.attrs
        src = node.inputs[0]
        nd = a["nd"]
        lead = len(src.shape) - nd
        is_max = a["mode"] == "max"
        acc = self.tmp("acc")
        deps = _deps(*[d for _, d in idx])
        init = '-float("inf")' if is_max else "0.0"
        memory = self._memory_read_in_place(src)
        # runs: each output's last-dim taps one vector, the tile an accumulator a tap wide
        run = next_pow2(a["kernel"][-1]) if memory is not None and self._reads_runs(node, idx) else 0
        shape = self._shape_of(deps)
        if run:
            shape = f"{shape[:-1]}, {run}]"
            self.pool_run = max(self.pool_run, run)
        self.emit(f"{acc} = tl.full({shape}, {init}, tl.float32)")
        starts = [self.assign(f"{idx[lead + j][0]} * {a['stride'][j]} - {a['padding'][j]}", "w") for j in range(nd)]
        pairs = memory is not None and not run and self._reads_pairs(node, idx)
        windows = self._windows(node, memory, idx, starts, pairs) if memory is not None else None
        # a pool whose window reads another pool (two max pools in a row) names its taps apart:
        # the inner loops would otherwise rebind the outer taps that its later iterations read
        depth = self.open_pools
        taps = [f"k{j}_{depth + 1}" if depth else f"k{j}" for j in range(nd)]
        outer = self.scope
        self.scope = Scope(parent=outer)
        self.open_pools += 1
        if run:
            loops = self._fold_tap_runs(node, taps, starts, acc, init, run, windows[0], windows[3])
        elif windows is not None:
            loops = self._fold_masked_taps(node, taps, starts, acc, init, *windows)
        else:
            loops = self._fold_clamped_taps(node, taps, idx, starts, acc)
        self.open_pools -= 1
        block = self.scope.lines
        self.scope = outer
        # a static loop per window dim: the window is small and known, so it unrolls
        for j in reversed(range(loops)):
            block = [f"for {taps[j]} in tl.static_range({a['kernel'][j]}):"] + ["    " + line for line in block]
        outer.lines.extend(block)
        if run:  # the runs' lanes folded into one value an output
            lanes = acc
            acc = self.tmp("acc")
            if is_max:
                self.helpers.add(NAN_COMBINE["amax"])
                self.emit(f"{acc} = tl.reduce({lanes}, 2, {NAN_COMBINE['amax']})")
            else:
                self.emit(f"{acc} = tl.sum({lanes}, axis=2)")
        if is_max:
            return acc, deps
        return self._window_mean(node, acc, starts), deps

    def _memory_read_in_place(self, src: Node) -> Node | None:
        """The tensor in memory whose taps are loaded at offsets from the window's first element (a
        floating-point tensor, indexed flat): the source, or the tensor it views with unit dims added
        or dropped (a 1-D pool is traced as a 2-D one over an unsqueezed input, whose flat layout is
        the input's). None where the window's values are computed."""
        memory = src
        while memory.kind == ir.VIEW and memory.attrs.get("squeeze"):
            memory = memory.inputs[0]
        in_memory = memory.kind in (ir.INPUT, ir.EXTERN) or memory in self.materialized and memory not in self.outputs
        if in_memory and memory.dtype.is_floating_point and not self.reads_strided(memory):
            return memory
        return None

    def _reads_pairs(self, node: Node, idx) -> bool:
        """Whether the last dim's taps at output index * 2 and * 2 + 1 are read as one pair: a
        stride-2, undilated window over the columns of a rows x columns tile."""
        a = node.attrs
        k, p = a["kernel"][-1], a["padding"][-1]
        return (bool(self.tun.get("pointwise.pool_pairs", 1)) and a["stride"][-1] == 2 and a["dilation"][-1] == 1
                and p + 1 < k and "c" in idx[-1][1])

    def _reads_runs(self, node: Node, idx) -> bool:
        """Whether the last dim's taps of each output are read as one vector (a run), lanes along
        the taps: a window of 8 taps or more that moves 4 or more elements an output. Read tap by
        tap, each warp's load there spans stride x 32 elements, as many lines as the stride, for one
        element each. On an H200, the average pool 11x11, stride 11 over 17 GB (public level-1 45):
        6.44 ms tap by tap, 5.12 in runs of 16 lanes (32 outputs a program; 64: 5.68, 128: 9.03).
        A window of 4 (stride 4, after a matmul) was no faster in runs, one of 16 the same."""
        a = node.attrs
        return (bool(self.tun.get("pointwise.pool_runs", 1)) and self.row_vars is not None and "c" in idx[-1][1]
                and a["dilation"][-1] == 1 and a["stride"][-1] >= 4 and a["kernel"][-1] >= 8)

    def _windows(self, node: Node, memory: Node, idx, starts, pairs: bool):
        """Pointers to each output element's window's first element and, where the last dim reads
        pairs, to its first pair (at output index * 2: an even offset, which the compiler needs to
        see to load the pair as one vector); and the deps of their mask. `memory` holds src's
        elements in src's flat order (src itself, or the tensor it views with unit dims)."""
        src = node.inputs[0]
        lead = len(src.shape) - len(starts)
        at = list(idx[:lead]) + [(s, idx[lead + j][1]) for j, s in enumerate(starts)]
        first, deps = self.linear(at, src.shape)
        self.flat_reads.add(memory)
        if not pairs and _aligned_window_unaligned_taps(node.attrs):
            first = f"tl.max_contiguous({first}, {[1] * (1 if self.row_vars is None else 2)})"
        window = self.assign(f"{self.ptr(memory)} + {first}", "window")
        if not pairs:
            return window, None, None, deps
        even = self.assign(f"{idx[-1][0]} * 2", "w")
        pair = self.assign(f"{self.ptr(memory)} + {self.linear(at[:-1] + [(even, idx[-1][1])], src.shape)[0]}", "window")
        return window, pair, even, deps

    def _fold_masked_taps(self, node: Node, tap_names, starts, acc, fill, window, pair, even, deps) -> int:
        """The window folded from loads at its first element plus each tap's offset. Returns how
        many dims the static loops cover (the last is unrolled here where it reads a pair)."""
        a, src = node.attrs, node.inputs[0]
        nd = a["nd"]
        sizes = src.shape[len(src.shape) - nd:]
        steps = [_prod(sizes[j + 1:]) for j in range(nd)]
        taps = [_times(tap_names[j], a["dilation"][j]) for j in range(nd)]
        inner = [_tap_inside(a, j, starts[j], taps[j], sizes[j]) for j in range(nd)]
        base_mask = self.mask(deps)
        cast = f".to({compute_type(src.dtype)})"

        def tap_offset(dims, last_term=""):
            return " + ".join([_times(taps[j], steps[j]) for j in dims] + ([last_term] if last_term else [])) or "0"

        def fold(value):
            if a["mode"] == "max":
                self.emit(f"{acc} = {extremum('amax', acc, value, False)}")
            else:
                self.emit(f"{acc} += {value}")

        if pair is None:
            ok = " & ".join(t for t in [base_mask, *inner] if t)
            fold(self.assign(f"tl.load({window} + {tap_offset(range(nd))}, mask={ok}, other={fill}){cast}", "x"))
            return nd
        # The last dim unrolled here: its taps at output index * 2 and * 2 + 1 are one contiguous
        # pair (a vector load), the others single loads.
        last, w = nd - 1, starts[-1]
        k, p = a["kernel"][last], a["padding"][last]
        outer_ok = " & ".join(t for t in [base_mask, *inner[:last]] if t)
        for t in range(k):
            if t == p:
                two = "tl.arange(0, 2)[None, None, :]"
                inside = f"({even}[:, :, None] + {two} < {sizes[last]})"  # from output index * 2: never below 0
                ok = f"({outer_ok})[:, :, None] & {inside}" if outer_ok else inside
                both = self.assign(f"tl.load({pair}[:, :, None] + {tap_offset(range(last), two)}, mask={ok}, "
                                   f"other={fill}){cast}", "x")
                left, right = self.tmp("x"), self.tmp("x")
                self.emit(f"{left}, {right} = tl.split({both})")
                fold(left)
                fold(right)
            elif t != p + 1:
                ok = " & ".join(([outer_ok] if outer_ok else []) + [_inside(f"{w} + {t}" if t else w, sizes[last])])
                fold(self.assign(f"tl.load({window} + {tap_offset(range(last), str(t) if t else '')}, mask={ok}, "
                                 f"other={fill}){cast}", "x"))
        return last

    def _fold_tap_runs(self, node: Node, tap_names, starts, acc, fill, run: int, window, deps) -> int:
        """The window folded a run at a time: the last dim's taps of each output loaded as one
        vector of `run` lanes (the window's width rounded up to a power of two, the lanes past it
        masked) into a lane-wide accumulator, the other dims in static loops (their count is
        returned)."""
        a, src = node.attrs, node.inputs[0]
        nd = a["nd"]
        last = nd - 1
        sizes = src.shape[len(src.shape) - nd:]
        steps = [_prod(sizes[j + 1:]) for j in range(nd)]
        taps = [_times(tap_names[j], a["dilation"][j]) for j in range(last)]
        lanes = f"tl.arange(0, {run})[None, None, :]"
        position = self.assign(f"{starts[last]}[:, :, None] + {lanes}", "p")
        inside = f"({position} >= 0) & ({position} < {sizes[last]})"
        if run > a["kernel"][last]:
            inside = f"({lanes} < {a['kernel'][last]}) & {inside}"
        outer = [self.mask(deps)] + [_tap_inside(a, j, starts[j], taps[j], sizes[j]) for j in range(last)]
        outer_ok = " & ".join(t for t in outer if t)
        ok = f"({outer_ok})[:, :, None] & {inside}" if outer_ok else inside
        offset = " + ".join([f"{window}[:, :, None]"] + [_times(taps[j], steps[j]) for j in range(last)] + [lanes])
        x = self.assign(f"tl.load({offset}, mask={ok}, other={fill}).to({compute_type(src.dtype)})", "x")
        if a["mode"] == "max":
            self.emit(f"{acc} = {extremum('amax', acc, x, False)}")
        else:
            self.emit(f"{acc} += {x}")
        return last

    def _fold_clamped_taps(self, node: Node, tap_names, idx, starts, acc) -> int:
        """The window of a computed source: each tap's indices clamped into it, padding selected away."""
        a, src = node.attrs, node.inputs[0]
        nd = a["nd"]
        lead = len(src.shape) - nd
        src_idx = list(idx[:lead])
        valid = []
        for j in range(nd):
            pos = self.assign(f"{starts[j]} + {tap_names[j]} * {a['dilation'][j]}", "p")
            size = src.shape[lead + j]
            valid.append(f"({pos} >= 0) & ({pos} < {size})")
            src_idx.append((self.assign(f"tl.minimum(tl.maximum({pos}, 0), {size} - 1)", "p"), idx[lead + j][1]))
        v, _ = self.value(src, src_idx)
        ok = self.assign(" & ".join(valid), "ok")
        if a["mode"] == "max":
            self.emit(f"{acc} = tl.where({ok}, {extremum('amax', acc, v, False)}, {acc})")
        else:
            self.emit(f"{acc} += tl.where({ok}, {v}, 0.0)")
        return nd

    def _window_mean(self, node: Node, acc, starts):
        a, src = node.attrs, node.inputs[0]
        nd = a["nd"]
        lead = len(src.shape) - nd
        if a.get("divisor_override"):
            return self.assign(f"{acc} / {float(a['divisor_override'])}", "v")
        counts = []
        for j in range(nd):
            size = src.shape[lead + j]
            s, k, p = starts[j], a["kernel"][j], a["padding"][j]
            end = f"tl.minimum({s} + {k}, {size} + {p})"
            if a["count_include_pad"]:
                counts.append(f"({end} - {s})")
            else:
                counts.append(f"(tl.minimum({end}, {size}) - tl.maximum({s}, 0))")
        return self.assign(f"{acc} / ({' * '.join(counts)}).to(tl.float32)", "v")


def _times(factor: str, scale) -> str:
    """factor * scale, without a product by one."""
    scale = str(scale)
    if scale == "1":
        return factor
    return f"{factor} * {scale}" if scale.isidentifier() or scale.isdigit() else f"{factor} * ({scale})"


def _inside(position: str, size: str) -> str:
    return f"({position} >= 0) & ({position} < {size})"


def _tap_inside(a: dict, j: int, start: str, tap: str, size: str) -> str | None:
    """The condition that dim j's tap lies inside the source, or None where it always does: the
    unit dim a 1-D pool's trace adds (window 1, no padding)."""
    if (size, a["kernel"][j], a["padding"][j]) == ("1", 1, 0):
        return None
    return _inside(f"{start} + {tap}", size)


def _aligned_window_unaligned_taps(a: dict) -> bool:
    """Whether the window's first elements run contiguous and may start on a vector boundary
    (stride 1 along the last dim, even padding) while its later taps do not: Triton then gives
    each thread consecutive outputs, and every unaligned tap became as many scalar loads, each
    spread over as many lines. Read one element a thread instead (a contiguity of 1), each
    warp's load is coalesced: on an H200 the 1-D max pool over (64, 192, 65536), window 8,
    dilation 3, padding 4 (public level-1 41) took 3.83 ms with four outputs a thread, 1.93 with
    one. A stride-1 window of odd padding never starts on a vector, nor one of stride 2 or more
    runs contiguous: Triton gives those one element a thread already."""
    return a["stride"][-1] == 1 and a["padding"][-1] % 2 == 0 and a["kernel"][-1] > 1
