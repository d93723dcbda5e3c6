"""Conv2d (3x3) -> BatchNorm2d (eval, running statistics) -> ReLU over (128, 16, 512, 512) fp32: 2.1 GB in, 4.3 GB out, 309 GFLOP (cuDNN)."""
import torch
import torch.nn as nn

BATCH = 128
IN_CHANNELS = 16
OUT_CHANNELS = 32
HEIGHT = 512
WIDTH = 512
KERNEL_SIZE = 3


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        with torch.no_grad():  # running statistics as a trained model has them
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


def get_inputs():
    return [torch.randn(BATCH, IN_CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE]
