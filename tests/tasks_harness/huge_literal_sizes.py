"""A task far larger than any machine (4 TB per tensor), its sizes written as literals, so the CPU
run cannot shrink them: it must be refused with the numbers before anything is allocated."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(1 << 20, 1 << 20)]


def get_init_inputs():
    return []
