"""Scan: cumsum along dim 1 of (32768, 65536) fp32 (8.6 GB per tensor)."""
import torch
import torch.nn as nn

BATCH = 32768
DIM = 65536


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.cumsum(x, dim=1)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
