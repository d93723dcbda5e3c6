"""AvgPool2d (3, stride 2, padding 1) over (16, 64, 1024, 1024) fp32: 4.3 GB in, 1.1 GB out."""
import torch
import torch.nn as nn

BATCH = 16
CHANNELS = 64
HEIGHT = 1024
WIDTH = 1024
KERNEL = 3
STRIDE = 2
PADDING = 1


class Model(nn.Module):
    def __init__(self, k, s, p):
        super().__init__()
        self.pool = nn.AvgPool2d(k, s, p)

    def forward(self, x):
        return self.pool(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [KERNEL, STRIDE, PADDING]
