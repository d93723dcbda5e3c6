"""In-place activations (nn.ReLU(inplace=True), torch.relu_, F.relu(inplace=True), Tensor.relu_) over (4096, 393216) fp32 (6.4 GB per tensor)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 4096
DIM = 393216


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.act(x * 2.0)
        y = torch.relu_(y - 1.0)
        y = F.relu(y + 0.5, inplace=True)
        return (y - 0.25).relu_()


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
