"""Matmul: batched, fp16."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 32
M = 1024
K = 1024
N = 1024


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, a, b):
        return torch.bmm(a, b)


def get_inputs():
    return [torch.randn(BATCH, M, K, dtype=torch.float16), torch.randn(BATCH, K, N, dtype=torch.float16)]


def get_init_inputs():
    return []
