"""ConvTranspose1d alone (stride 3, padding 2, output_padding 1, dilation 2, 8 groups) over (32, 32, 524288) fp32: 2.1 GB in, 3.2 GB out, 11 GFLOP."""
import torch
import torch.nn as nn

BATCH = 32
IN_CHANNELS = 32
OUT_CHANNELS = 16
LENGTH = 524288
KERNEL_SIZE = 5
GROUPS = 8


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, groups):
        super().__init__()
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=3, padding=2,
                                       output_padding=1, groups=groups, dilation=2)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, LENGTH)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE, GROUPS]
