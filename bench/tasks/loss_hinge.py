"""Loss: hinge, mean(clamp(1 - pred * target, min=0))."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 4096
DIM = 8192


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        pass

    def forward(self, predictions, targets):
        return torch.mean(torch.clamp(1 - predictions * targets, min=0))


def get_inputs():
    return [torch.randn(BATCH, DIM), torch.randint(0, 2, (BATCH, DIM)).float() * 2 - 1]


def get_init_inputs():
    return []
