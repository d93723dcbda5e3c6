"""Cumulative scans (cumsum, cumprod) along a row kernel's columns, and the column loop that
looped scans and reductions walk (BLOCK_N columns a step; a split row walks its own chunk)."""
from __future__ import annotations

from .ir import Node
from .scope import NeedMaterialize, Scope


class RowScans:
    """Mixed into emit.Kernel, beside RowReductions."""

    def scan(self, node: Node, idx):
        x = node.inputs[0]
        d = node.attrs["dim"]
        if self.row_vars is None or tuple(x.shape) != tuple(self.F) or list(self.A) != [d]:
            raise NeedMaterialize(node)
        full = self.full_idx()
        if [e for e, _ in idx] != [e for e, _ in full]:
            raise NeedMaterialize(node)
        v, _ = self.value(x, full)
        is_sum = node.op == "cumsum"
        neutral = "0" if is_sum else "1"
        # float sums scan in fp64: a parallel scan adds in another order than torch's, and fp32
        # prefix sums of thousands of terms would differ by more than the tolerance
        ct = ("tl.float64" if is_sum else "tl.float32") if node.dtype.is_floating_point else "tl.int64"
        m = self.assign(f"tl.where({self.row_mask} & col_mask, {v}, {neutral}).to({ct})", "m")
        fn = "tl.cumsum" if is_sum else "tl.cumprod"
        res = self.assign(f"{fn}({m}, axis=1)", "scan")
        if self.strategy == "persistent":
            return (self.assign(f"{res}.to(tl.float32)", "scan") if ct == "tl.float64" else res), "rc"
        # looped: carry the running total of the previous column blocks
        carry = self.tmp("carry")
        self.loop_section.lines.append(f"{carry} = tl.full([BLOCK_M, 1], {neutral}, {ct})")
        out = self.assign(f"({res} {'+' if is_sum else '*'} {carry}).to(tl.float32)" if ct == "tl.float64"
                          else f"{res} {'+' if is_sum else '*'} {carry}", "scan")
        if is_sum:
            self.scope.tail.append(f"{carry} = {carry} + tl.sum({m}, axis=1)[:, None]")
        else:
            self.helpers.add("multiply")
            self.scope.tail.append(f"{carry} = {carry} * tl.reduce({m}, 1, multiply)[:, None]")
        return out, "rc"

    def _open_cols(self, body: Scope, start: str):
        if self.strategy == "split":  # this program's share of the row: [part * chunk, (part + 1) * chunk)
            # (chunk is a whole number of blocks: only the row's end needs a mask)
            body.lines.append(f"cols = part * chunk + {start} + tl.arange(0, BLOCK_N)[None, :]")
            body.lines.append("col_mask = cols < n_cols")
        else:
            body.lines.append(f"cols = {start} + tl.arange(0, BLOCK_N)[None, :]")
            body.lines.append("col_mask = cols < n_cols")
        body.lines.extend(self.col_lines)

    def _close_loop(self, section: Scope, body: Scope, start: str):
        end = "chunk" if self.strategy == "split" else "n_cols"
        section.lines.append(f"for {start} in range(0, {end}, BLOCK_N):")
        section.lines.extend("    " + l for l in body.lines + body.tail)
