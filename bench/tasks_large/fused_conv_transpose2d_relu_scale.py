"""ConvTranspose2d (3x3, stride 2, padding 1, output_padding 1, dilation 2, 2 groups) -> ReLU -> scale over (32, 64, 512, 512) fp32: 2.1 GB in, 4.3 GB out, 155 GFLOP (cuDNN)."""
import torch
import torch.nn as nn

BATCH = 32
IN_CHANNELS = 64
OUT_CHANNELS = 32
HEIGHT = 512
WIDTH = 512
KERNEL_SIZE = 3


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2, padding=1,
                                       output_padding=1, groups=2, dilation=2)

    def forward(self, x):
        return torch.relu(self.conv(x)) * 2.0


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE]
