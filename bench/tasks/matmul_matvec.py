"""Matmul: matrix-vector product."""
import torch
import torch.nn as nn
import torch.nn.functional as F

M = 16384
K = 8192


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, a, v):
        return torch.matmul(a, v)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, 1)]


def get_init_inputs():
    return []
