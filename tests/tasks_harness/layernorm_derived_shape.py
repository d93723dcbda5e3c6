"""LayerNorm over the last three dims with normalized_shape computed at module level from the size
constants: shrinking the constants must shrink the tuple with them."""
import torch
import torch.nn as nn

batch_size = 16
features = 64
dim1 = 256
dim2 = 256
NORMALIZED_SHAPE = (features, dim1, dim2)


class Model(nn.Module):
    def __init__(self, normalized_shape):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape)

    def forward(self, x):
        return self.ln(x)


def get_inputs():
    return [torch.randn(batch_size, *NORMALIZED_SHAPE)]


def get_init_inputs():
    return [NORMALIZED_SHAPE]
