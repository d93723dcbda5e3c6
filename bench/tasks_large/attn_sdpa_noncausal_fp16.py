"""Non-causal scaled dot-product attention, fp16, (32, 32, 4096, 128) q/k/v (1.1 GB each)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 32
HEADS = 32
SEQ = 4096
HEAD_DIM = 128


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def get_inputs():
    shape = (BATCH, HEADS, SEQ, HEAD_DIM)
    return [torch.randn(shape, dtype=torch.float16) for _ in range(3)]


def get_init_inputs():
    return []
