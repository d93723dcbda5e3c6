"""Binary/ternary: x + 0.5 * y * z with a 0-d tensor scale."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 4096
DIM = 8192


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, x, y, z, s):
        return torch.addcmul(x, y, z, value=0.5) * s


def get_inputs():
    return [torch.randn(BATCH, DIM), torch.randn(BATCH, 1), torch.randn(DIM), torch.tensor(1.5)]


def get_init_inputs():
    return []
