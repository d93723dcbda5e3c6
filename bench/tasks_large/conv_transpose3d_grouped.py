"""ConvTranspose3d alone (kernel (3, 2, 3), stride (2, 1, 2), 8 groups) over (8, 16, 32, 256, 256) fp32: 1.1 GB in, 4.3 GB out, 19 GFLOP."""
import torch
import torch.nn as nn

BATCH = 8
IN_CHANNELS = 16
OUT_CHANNELS = 16
DEPTH = 32
HEIGHT = 256
WIDTH = 256
GROUPS = 8


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
