"""diag(a) @ B: a row scaling of B, written as torch materialises it (a dense diagonal matrix)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.diag(a) @ b


rows = 16
cols = 64


def get_inputs():
    return [torch.randn(rows), torch.randn(rows, cols)]


def get_init_inputs():
    return []
