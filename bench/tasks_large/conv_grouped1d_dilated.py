"""Grouped Conv1d alone (16 groups, kernel 5, dilation 2, padding 2, bias) over (64, 64, 131072) fp32: 2.1 GB in, 2.1 GB out, 21 GFLOP."""
import torch
import torch.nn as nn

BATCH = 64
IN_CHANNELS = 64
OUT_CHANNELS = 64
LENGTH = 131072
KERNEL_SIZE = 5
GROUPS = 16


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, groups):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=2, dilation=2, groups=groups)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, LENGTH)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE, GROUPS]
