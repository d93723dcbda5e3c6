"""Batched matmul -> scale -> tanh -> bias add, fp16 (3-D activations times a weight)."""
import torch
import torch.nn as nn

BATCH = 32
SEQ = 512
K = 1024
N = 2048


class Model(nn.Module):
    def __init__(self, k, n):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(k, n, dtype=torch.float16) * 0.03)
        self.bias = nn.Parameter(torch.randn(n, dtype=torch.float16) * 0.1)

    def forward(self, x):
        y = torch.matmul(x, self.weight) * 0.5
        return torch.tanh(y) + self.bias


def get_inputs():
    return [torch.randn(BATCH, SEQ, K, dtype=torch.float16)]


def get_init_inputs():
    return [K, N]
