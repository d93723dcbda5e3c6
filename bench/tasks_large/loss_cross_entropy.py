"""Cross entropy over 4096 classes, (262144, 4096) fp32 logits (4.3 GB) and int64 targets, mean reduction."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 262144
CLASSES = 4096


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions, targets):
        return F.cross_entropy(predictions, targets)


def get_inputs():
    return [torch.randn(BATCH, CLASSES), torch.randint(0, CLASSES, (BATCH,))]


def get_init_inputs():
    return []
