"""ConvTranspose3d alone: anisotropic kernel (3, 2, 3), stride (2, 1, 2), padding (1, 0, 1),
output_padding (1, 0, 0), 2 groups."""
import torch
import torch.nn as nn

BATCH = 8
IN_CHANNELS = 32
OUT_CHANNELS = 16
DEPTH = 16
HEIGHT = 32
WIDTH = 32
GROUPS = 2


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, groups):
        super().__init__()
        self.conv = nn.ConvTranspose3d(in_channels, out_channels, (3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1),
                                       output_padding=(1, 0, 0), groups=groups)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, DEPTH, HEIGHT, WIDTH)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, GROUPS]
