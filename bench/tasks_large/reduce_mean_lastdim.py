"""Reduction: mean over the last dim of (128, 4096, 4095) fp32 (8.6 GB input), (128, 4096) out."""
import torch
import torch.nn as nn

BATCH = 128
DIM1 = 4096
DIM2 = 4095


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.mean(x, dim=-1)


def get_inputs():
    return [torch.randn(BATCH, DIM1, DIM2)]


def get_init_inputs():
    return []
