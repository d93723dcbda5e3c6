"""Conv2d -> subtract -> HardSwish -> tanh -> multiply by a per-channel scale, fp16."""
import torch
import torch.nn as nn

BATCH = 32
IN_CHANNELS = 64
OUT_CHANNELS = 64
HEIGHT = 128
WIDTH = 128
KERNEL_SIZE = 3


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, shift):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=1, dtype=torch.float16)
        self.channel_scale = nn.Parameter(torch.rand(out_channels, 1, 1, dtype=torch.float16) + 0.5)
        self.shift = shift

    def forward(self, x):
        x = self.conv(x) - self.shift
        x = torch.nn.functional.hardswish(x)
        return torch.tanh(x) * self.channel_scale


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, HEIGHT, WIDTH, dtype=torch.float16)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE, 0.25]
