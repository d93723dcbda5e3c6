"""Conv2d (3x3) -> ReLU -> max_pool2d(2) over (128, 16, 512, 512) fp32: 2.1 GB in, 4.3 GB conv output, 1.1 GB out, 309 GFLOP (cuDNN)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 128
IN_CHANNELS = 16
OUT_CHANNELS = 32
HEIGHT = 512
WIDTH = 512
KERNEL_SIZE = 3


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=1)

    def forward(self, x):
        return F.max_pool2d(torch.relu(self.conv(x)), kernel_size=2)


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE]
