"""Two GELU implementations: a request for "the gelu" cannot tell which one is meant."""
import math

import torch
import torch.nn as nn


def gelu_reference(x):
    """Exact GELU through erf."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


class FastGelu(nn.Module):
    """Tanh approximation of GELU."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


class Classifier(nn.Module):
    def __init__(self, dim: int = 16, classes: int = 4):
        super().__init__()
        self.hidden = nn.Linear(dim, dim)
        self.act = FastGelu()
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(gelu_reference(self.act(self.hidden(x))))


class Config:
    """Not a module: a target that cannot be optimized."""

    dim = 16
