"""Matmul of two transposed operands, fp16: C = A.T @ B.T (strided views, no copies)."""
import torch
import torch.nn as nn

M = 4096
K = 2048
N = 4096


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A.T, B.T)


def get_inputs():
    return [torch.randn(K, M, dtype=torch.float16), torch.randn(N, K, dtype=torch.float16)]


def get_init_inputs():
    return []
