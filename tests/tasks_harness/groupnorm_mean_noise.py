"""A legitimate task whose output is only rounding noise at its own initialisation: the mean of a
group norm's output over channels and positions is its bias's mean, 0, so float32 gives ~1e-8 of
cancellation where float64 gives ~1e-17 (a public benchmark task computes conv3d + group norm +
this mean). Its own initialisation cannot tell a kernel from one that writes zeros."""
import torch
import torch.nn as nn

BATCH = 8
CHANNELS = 16
GROUPS = 4
SIZE = 16


class Model(nn.Module):
    def __init__(self, groups, channels):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)

    def forward(self, x):
        return self.norm(x).mean(dim=[1, 2, 3])


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, SIZE, SIZE)]


def get_init_inputs():
    return [GROUPS, CHANNELS]
