"""Activation: GELU (erf form) over (8192, 393216) bf16 (6.4 GB per tensor)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 8192
DIM = 393216


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.gelu(x)


def get_inputs():
    return [torch.randn(BATCH, DIM, dtype=torch.bfloat16)]


def get_init_inputs():
    return []
