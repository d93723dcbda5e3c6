"""Product of lower-triangular matrices, fp16: C = tril(tril(A) @ tril(B))."""
import torch
import torch.nn as nn

N = 4096


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.tril(torch.matmul(torch.tril(A), torch.tril(B)))


def get_inputs():
    return [torch.randn(N, N, dtype=torch.float16) / 8, torch.randn(N, N, dtype=torch.float16) / 8]


def get_init_inputs():
    return []
