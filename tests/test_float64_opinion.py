"""The judge's float64 second opinion where a whole float64 evaluation does not fit the device: slice
by slice of the leading dim, only where the op treats those slices independently."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.float64_opinion import in_leading_slices


class CausalAttention(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class CentreOverBatch(nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)


def test_attention_evaluated_slice_by_slice_equals_the_whole_float64_evaluation():
    torch.manual_seed(0)
    inputs = [torch.randn(8, 2, 16, 8) for _ in range(3)]
    model = CausalAttention()
    truth = in_leading_slices(model, inputs, model(*inputs), "cpu", parts=(4,))
    whole = model(*[t.double() for t in inputs])
    assert truth.dtype == torch.float64
    torch.testing.assert_close(truth, whole, rtol=1e-12, atol=1e-12)


def test_an_op_that_mixes_the_leading_dim_is_not_sliced():
    x = torch.randn(8, 4)
    model = CentreOverBatch()
    assert in_leading_slices(model, [x], model(x), "cpu") is None


class RowCumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_float64_opinion_without_room_on_the_device_is_kept_on_the_host_and_still_judges(monkeypatch):
    # An 8.6 GB cumsum's float64 result did not fit beside the judge's tensors; evaluated on the
    # host's CPU instead it took minutes a trial. Now the slices are computed on the device and
    # only the whole result waits in host memory, brought back chunk by chunk.
    from harness import compare
    from harness.float64_opinion import within_reference_error
    torch.manual_seed(0)
    x = torch.randn(64, 65536, device="cuda")
    model = RowCumsum()
    expected = model(x)
    real_empty = torch.empty

    def no_room_for_float64(*shape, **kwargs):
        if kwargs.get("dtype") == torch.float64 and str(kwargs.get("device", "")).startswith("cuda"):
            raise torch.OutOfMemoryError("no room for the whole float64 result")
        return real_empty(*shape, **kwargs)

    monkeypatch.setattr(torch, "empty", no_room_for_float64)
    monkeypatch.setattr(compare, "COMPARE_CHUNK", 1 << 20)  # several chunks
    truth = in_leading_slices(model, [x], expected, "cuda", parts=(4,))
    monkeypatch.setattr(torch, "empty", real_empty)
    assert truth is not None and truth.device.type == "cpu" and truth.dtype == torch.float64
    torch.testing.assert_close(truth, model(x.double()).cpu(), rtol=1e-12, atol=1e-12)
    # a scan in another order (blocks, then their carries) passes; a running sum in half precision does not
    inner = torch.cumsum(x.view(64, 256, 256), 2)
    carry = torch.cumsum(inner[:, :, -1], 1) - inner[:, :, -1]
    assert within_reference_error((inner + carry[:, :, None]).view(64, 65536), expected, truth)
    assert not within_reference_error(torch.cumsum(x.half(), 1).float(), expected, truth)
