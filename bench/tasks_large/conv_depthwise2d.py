"""Depthwise Conv2d alone (3x3, stride 2, padding 1) over (16, 64, 1024, 1024) fp32: 4.3 GB in, 1.1 GB out, 4.8 GFLOP."""
import torch
import torch.nn as nn

BATCH = 16
CHANNELS = 64
HEIGHT = 1024
WIDTH = 1024
KERNEL_SIZE = 3


class Model(nn.Module):
    def __init__(self, channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, stride=2, padding=1, groups=channels, bias=False)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [CHANNELS, KERNEL_SIZE]
