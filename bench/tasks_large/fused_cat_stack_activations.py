"""cat([relu(x), sigmoid(x)], 1) and stack([2x, tanh(x)]) of x (4096, 131072) fp32: 2.1 GB in, two 4.3 GB outputs."""
import torch
import torch.nn as nn

BATCH = 4096
DIM = 131072


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        joined = torch.cat([torch.relu(x), torch.sigmoid(x)], dim=1)
        stacked = torch.stack([x * 2.0, torch.tanh(x)], dim=0)
        return joined, stacked


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
