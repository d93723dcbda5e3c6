"""A decoder layer whose RMS norm relies on a module-level helper and constants."""
import os
import sys

import torch
import torch.nn as nn

# Numerical floor of the norm; shared with other layers of the real model.
EPS = 1e-6
SCALE_INIT = 1.0
WIDTH = 24


def _mean_square(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=-1, keepdim=True)


def _debug_dump(x):  # not used by the norm: must not end up in the task
    print(os.getpid(), x.shape, file=sys.stderr)


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), SCALE_INIT))

    def forward(self, x):
        return x * torch.rsqrt(_mean_square(x) + EPS) * self.weight


class DecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_norm = RMSNorm(WIDTH)
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        return x + self.proj(self.input_norm(x))
