"""4096 x 4096 fp32 matmul with a bias + GELU epilogue (vendor matmul with Triton work fused around it)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

N = 4096


class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(n) * 0.1)

    def forward(self, a, b):
        return F.gelu(torch.matmul(a, b) + self.bias)


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]


def get_init_inputs():
    return [N]
