"""Matrix-vector product at a large size, fp32: (M, K) @ (K, 1), a 512 MB matrix."""
import torch
import torch.nn as nn

M = 32768
K = 4096


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, 1)]


def get_init_inputs():
    return []
