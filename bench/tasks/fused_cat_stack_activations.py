"""cat and stack of values computed in the graph: cat([relu(x), sigmoid(x)], 1), stack([2x, tanh(x)])."""
import torch
import torch.nn as nn

BATCH = 2048
DIM = 8192


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
