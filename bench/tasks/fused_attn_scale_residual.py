"""Causal attention -> scale -> residual add -> GELU, fp16."""
import torch
import torch.nn as nn

BATCH = 4
HEADS = 16
SEQ = 2048
HEAD_DIM = 64


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v, residual):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return torch.nn.functional.gelu(out * 0.5 + residual)


def get_inputs():
    shape = (BATCH, HEADS, SEQ, HEAD_DIM)
    return [torch.randn(*shape, dtype=torch.float16) for _ in range(4)]


def get_init_inputs():
    return []
