"""AvgPool3d (3, stride 2, padding 1) over (16, 32, 64, 256, 256) fp32: 8.6 GB in, 1.1 GB out."""
import torch
import torch.nn as nn

BATCH = 16
CHANNELS = 32
DEPTH = 64
HEIGHT = 256
WIDTH = 256
KERNEL = 3
STRIDE = 2
PADDING = 1


class Model(nn.Module):
    def __init__(self, k, s, p):
        super().__init__()
        self.pool = nn.AvgPool3d(k, s, p)

    def forward(self, x):
        return self.pool(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, DEPTH, HEIGHT, WIDTH)]


def get_init_inputs():
    return [KERNEL, STRIDE, PADDING]
