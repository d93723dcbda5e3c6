"""How much of a fused convolution task's time is the vendor convolution, and whether cuDNN runs it
faster in channels-last memory (as torch.compile's layout optimisation arranges) once the copies
in and out of that layout are paid.

    python -m bench.conv_layout_study --tasks bench/tasks_large [--only fused_conv2d_relu ...]

Prints one markdown row per task: the whole model in eager and torch.compile, then its first
convolution alone in NCHW, in channels-last (input and weight copied first), and channels-last
with the output copied back to NCHW. Times are triton.testing.do_bench medians (ms).
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib

import torch


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _first_conv(model: torch.nn.Module):
    for m in model.modules():
        if isinstance(m, (torch.nn.modules.conv._ConvNd)):
            return m
    return None


def study(path: pathlib.Path) -> str | None:
    from triton.testing import do_bench
    task = _load(path)
    torch.manual_seed(0)
    model = task.Model(*task.get_init_inputs()).cuda().eval()
    conv = _first_conv(model)
    if conv is None:
        return None
    inputs = [t.cuda() if isinstance(t, torch.Tensor) else t for t in task.get_inputs()]
    x = inputs[0]
    with torch.no_grad():
        eager = do_bench(lambda: model(*inputs))
        compiled = torch.compile(model)
        compiled(*inputs)
        compile_ms = do_bench(lambda: compiled(*inputs))
        nchw = do_bench(lambda: conv(x))
        cl = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        weight_cl = conv.weight.contiguous(memory_format=cl)

        def channels_last():
            return torch.ops.aten.convolution(x.contiguous(memory_format=cl), weight_cl, conv.bias, conv.stride,
                                              conv.padding, conv.dilation, conv.transposed, conv.output_padding,
                                              conv.groups)

        in_cl = do_bench(channels_last)
        back = do_bench(lambda: channels_last().contiguous())
        ref = conv(x)
        err = (channels_last() - ref).abs().max().item()
    del compiled
    torch.cuda.empty_cache()
    return (f"| {path.stem} | {eager:.3f} | {compile_ms:.3f} | {nchw:.3f} | {in_cl:.3f} | {back:.3f} | {err:.2e} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.conv_layout_study")
    p.add_argument("--tasks", default="bench/tasks_large")
    p.add_argument("--only", action="append", default=[])
    a = p.parse_args(argv)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}")
    print("| task | eager model ms | compile model ms | conv NCHW ms | conv channels-last (copy in) ms "
          "| + copy out ms | max diff |")
    print("|---|---|---|---|---|---|---|")
    paths = sorted(pathlib.Path(a.tasks).glob("*.py"))
    for path in paths:
        if a.only and path.stem not in a.only:
            continue
        row = study(path)
        if row:
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
