"""A tiny raster canvas and PNG writer (zlib + struct only), enough for one line plot.

Kept dependency-free on purpose: the report needs one small chart, not a plotting library.
"""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GREY: Color = (200, 200, 200)
BLUE: Color = (31, 90, 180)
LIGHT_BLUE: Color = (140, 180, 230)
RED: Color = (200, 60, 60)

# 3x5 bitmap glyphs for tick labels: each row is 3 bits, most significant bit on the left.
_GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "x": (0, 5, 2, 5, 0),
    "-": (0, 0, 7, 0, 0), " ": (0, 0, 0, 0, 0),
}


class Canvas:
    def __init__(self, width: int, height: int, background: Color = WHITE):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            offset = 3 * (y * self.width + x)
            self.pixels[offset : offset + 3] = bytes(color)

    def get(self, x: int, y: int) -> Color:
        offset = 3 * (y * self.width + x)
        return tuple(self.pixels[offset : offset + 3])  # type: ignore[return-value]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            for x in range(min(x0, x1), max(x0, x1) + 1):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1, dash: int = 0) -> None:
        """Bresenham; `dash` > 0 draws dash-long pieces with equal gaps."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step, half = dx + dy, 0, width // 2
        while True:
            if not dash or (step // dash) % 2 == 0:
                self.rect(x0 - half, y0 - half, x0 - half + width - 1, y0 - half + width - 1, color)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * err
            if doubled >= dy:
                err, x0 = err + dy, x0 + sx
            if doubled <= dx:
                err, y0 = err + dx, y0 + sy
            step += 1

    def dot(self, x: int, y: int, radius: int, color: Color) -> None:
        for oy in range(-radius, radius + 1):
            for ox in range(-radius, radius + 1):
                if ox * ox + oy * oy <= radius * radius:
                    self.set(x + ox, y + oy, color)

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> None:
        """Draw text with its top-left corner at (x, y); unknown characters are skipped."""
        for index, char in enumerate(text):
            rows = _GLYPHS.get(char)
            if rows is None:
                continue
            for row, bits in enumerate(rows):
                for col in range(3):
                    if bits & (4 >> col):
                        left, top = x + (index * 4 + col) * scale, y + row * scale
                        self.rect(left, top, left + scale - 1, top + scale - 1, color)

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return max(0, len(text) * 4 - 1) * scale

    def to_png(self) -> bytes:
        raw = bytearray()
        stride = 3 * self.width
        for y in range(self.height):
            raw.append(0)  # filter type 0 (None) per scanline
            raw += self.pixels[y * stride : (y + 1) * stride]
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(bytes(raw), 9))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A 1/2/5×10^k step giving about `target_ticks` ticks over `span`."""
    raw = max(span, 1e-9) / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f}"


def plot_best_speedup(
    best_steps: list[tuple[int, float]],
    points: list[tuple[int, float]],
    path: str | Path,
    *,
    total: int,
    width: int = 640,
    height: int = 400,
) -> Path:
    """Best speedup (step line) and every accepted candidate's speedup (dots) against the number
    of candidates evaluated; a dashed line marks 1.0x (parity with eager)."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 56, width - 16, 16, height - 36
    ys = [y for _, y in best_steps + points]
    y_max = max([1.2] + [y * 1.1 for y in ys])
    x_max = max(1, total)

    def px(x: float) -> int:
        return round(left + (right - left) * x / x_max)

    def py(y: float) -> int:
        return round(bottom - (bottom - top) * y / y_max)

    y_step = nice_step(y_max)
    tick = 0.0
    while tick <= y_max + 1e-9:
        canvas.line(left, py(tick), right, py(tick), GREY)
        label = _label(tick, y_step) + "x"
        canvas.text(left - 6 - Canvas.text_width(label), py(tick) - 5, label)
        tick += y_step
    x_step = max(1, round(nice_step(x_max)))
    for tick_x in range(0, x_max + 1, x_step):
        canvas.line(px(tick_x), bottom, px(tick_x), bottom + 4, BLACK)
        label = str(tick_x)
        canvas.text(px(tick_x) - Canvas.text_width(label) // 2, bottom + 8, label)
    canvas.line(left, py(1.0), right, py(1.0), RED, dash=4)
    canvas.line(left, top, left, bottom, BLACK, width=2)
    canvas.line(left, bottom, right, bottom, BLACK, width=2)

    for x, y in points:
        canvas.dot(px(x), py(y), 3, LIGHT_BLUE)
    previous = None
    for x, y in best_steps:
        if previous is not None:
            canvas.line(px(previous[0]), py(previous[1]), px(x), py(previous[1]), BLUE, width=2)
            canvas.line(px(x), py(previous[1]), px(x), py(y), BLUE, width=2)
        previous = (x, y)
    if previous is not None:  # hold the last best to the end of the axis
        canvas.line(px(previous[0]), py(previous[1]), px(x_max), py(previous[1]), BLUE, width=2)
        for x, y in best_steps:
            canvas.dot(px(x), py(y), 2, BLUE)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.to_png())
    return path
