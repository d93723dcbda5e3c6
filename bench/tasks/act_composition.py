"""Activation: gelu * sigmoid -> tanh + scaled relu."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 4096
DIM = 8192


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, x):
        return torch.tanh(F.gelu(x) * torch.sigmoid(x)) + F.relu(x) * 0.5


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
