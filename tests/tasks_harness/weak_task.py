"""A task that cannot judge anything: constant inputs and an all-zeros output."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x * 0


def get_inputs():
    return [torch.ones(8, 8)]


def get_init_inputs():
    return []
