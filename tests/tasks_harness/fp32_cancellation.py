"""An fp32 reference that rounds: adding then removing a large offset keeps only ~3 digits of x,
so the reference itself is off by far more than the fp32 tolerance (as long fp32 sums and scans
are on a GPU)."""
import torch
import torch.nn as nn

OFFSET = 3e4


class Model(nn.Module):
    def forward(self, x):
        return (x + OFFSET) - OFFSET


def get_inputs():
    return [torch.rand(8, 1024) * 1e-2]


def get_init_inputs():
    return []
