"""Matrix-vector product, fp32: (32768, 65536) @ (65536, 1), an 8.6 GB matrix."""
import torch
import torch.nn as nn

M = 32768
K = 65536


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, 1)]


def get_init_inputs():
    return []
