"""GroupNorm (8 groups) over (112, 64, 512, 512) fp32 (7.5 GB per tensor)."""
import torch
import torch.nn as nn

BATCH = 112
CHANNELS = 64
GROUPS = 8
HEIGHT = 512
WIDTH = 512


class Model(nn.Module):
    def __init__(self, groups, channels):
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)

    def forward(self, x):
        return self.gn(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [GROUPS, CHANNELS]
