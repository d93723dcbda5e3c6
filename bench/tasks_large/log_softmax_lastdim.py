"""LogSoftmax over the last dim of (4096, 393216) fp32 (6.4 GB per tensor)."""
import torch
import torch.nn as nn

BATCH = 4096
DIM = 393216


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.log_softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
