"""A relu whose get_inputs() draws from a generator of its own, seeded afresh on every call: the
judge's seeds do not reproduce its inputs (timing draws its alternate set twice)."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    generator = torch.Generator()
    generator.seed()
    return [torch.randn(2048, 4096, generator=generator)]


def get_init_inputs():
    return []
