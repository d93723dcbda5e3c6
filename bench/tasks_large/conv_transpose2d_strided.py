"""ConvTranspose2d alone (3x3, stride 2, padding 1, output_padding 1) over (16, 8, 1024, 1024) fp32: 0.5 GB in, 2.1 GB out, 19 GFLOP."""
import torch
import torch.nn as nn

BATCH = 16
IN_CHANNELS = 8
OUT_CHANNELS = 8
HEIGHT = 1024
WIDTH = 1024
KERNEL_SIZE = 3


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE]
