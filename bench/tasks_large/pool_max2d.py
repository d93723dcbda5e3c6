"""MaxPool2d (3, stride 2, padding 1) over (64, 64, 512, 512) fp32 (4.3 GB input)."""
import torch
import torch.nn as nn

BATCH = 64
CHANNELS = 64
HEIGHT = 512
WIDTH = 512
KERNEL = 3
STRIDE = 2
PADDING = 1


class Model(nn.Module):
    def __init__(self, k, s, p):
        super().__init__()
        self.pool = nn.MaxPool2d(k, s, p)

    def forward(self, x):
        return self.pool(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [KERNEL, STRIDE, PADDING]
