"""MaxPool1d (kernel 4, stride 2, padding 1, dilation 3) over (64, 128, 131072) fp32: 4.3 GB in, 2.1 GB out."""
import torch
import torch.nn as nn

BATCH = 64
CHANNELS = 128
LENGTH = 131072


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool1d(kernel_size=4, stride=2, padding=1, dilation=3, return_indices=False)

    def forward(self, x):
        return self.pool(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, LENGTH)]


def get_init_inputs():
    return []
