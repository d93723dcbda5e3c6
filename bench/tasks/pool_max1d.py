"""Pooling: MaxPool1d."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 64
CHANNELS = 128
LENGTH = 8192
KERNEL = 4
STRIDE = 2
PADDING = 1


class Model(nn.Module):
    def __init__(self, k, s, p):
        super().__init__()
        self.pool = nn.MaxPool1d(k, s, p)

    def forward(self, x):
        return self.pool(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, LENGTH)]


def get_init_inputs():
    return [KERNEL, STRIDE, PADDING]
