"""Batched matmul, fp32: (512, 1536, 512) @ (512, 512, 1024): 1.6 and 1.1 GB in, 3.2 GB out, 825 GFLOP."""
import torch
import torch.nn as nn

BATCH = 512
M = 1536
K = 512
N = 1024


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.bmm(A, B)


def get_inputs():
    return [torch.randn(BATCH, M, K), torch.randn(BATCH, K, N)]


def get_init_inputs():
    return []
