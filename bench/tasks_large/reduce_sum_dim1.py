"""Reduction: sum over dim 1 of (128, 4096, 4095) fp32 (8.6 GB input), keepdim."""
import torch
import torch.nn as nn

BATCH = 128
DIM1 = 4096
DIM2 = 4095
REDUCE_DIM = 1


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim, keepdim=True)


def get_inputs():
    return [torch.randn(BATCH, DIM1, DIM2)]


def get_init_inputs():
    return [REDUCE_DIM]
