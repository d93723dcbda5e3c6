"""Reduction: sum over dim 1 (keepdim)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 128
DIM1 = 4096
DIM2 = 256


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, x):
        return torch.sum(x, dim=1, keepdim=True)


def get_inputs():
    return [torch.randn(BATCH, DIM1, DIM2)]


def get_init_inputs():
    return []
