"""A legitimate task whose output is all zeros at its own initialisation: a residual branch behind
a zero-initialised gate (LayerScale / ReZero style). Its own inputs cannot tell a kernel from one
that writes zeros."""
import torch
import torch.nn as nn

BATCH = 16
DIM = 256


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return torch.relu(x) * self.gate


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM]
