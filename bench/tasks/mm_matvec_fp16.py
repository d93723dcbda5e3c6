"""Matrix-vector product, fp16: (M, K) @ (K, 1)."""
import torch
import torch.nn as nn

M = 16384
K = 8192


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(M, K, dtype=torch.float16), torch.randn(K, 1, dtype=torch.float16)]


def get_init_inputs():
    return []
