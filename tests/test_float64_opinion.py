"""The judge's float64 second opinion where a whole float64 evaluation does not fit the device: slice
by slice of the leading dim, only where the op treats those slices independently."""
import weakref

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


class BatchSizedRounding(nn.Module):
    """A row cumsum whose rounding depends on the batch size, as torch's GPU kernels' does."""

    def forward(self, x):
        return torch.cumsum(x, dim=1) + 1e-4 * x.shape[0]


def test_slices_that_differ_from_the_whole_only_by_rounding_are_still_evaluated_slice_by_slice():
    # On the H100, over (32768, 65536) inputs, the judge's opinion fell back to its host's CPU
    # (35 GB of host memory): most likely the cumsum of a quarter of the rows and the whole one
    # differed by rounding beyond the elementwise tolerance near zero.
    torch.manual_seed(0)
    x = torch.randn(64, 4096)
    model = BatchSizedRounding()
    truth = in_leading_slices(model, [x], model(x), "cpu", parts=(4,))
    assert truth is not None
    torch.testing.assert_close(truth, model(x.double()), rtol=0, atol=0.01)


class RowCumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def _cumsum_case(device):
    torch.manual_seed(0)
    x = torch.randn(64, 65536, device=device)
    model = RowCumsum()
    inner = torch.cumsum(x.view(64, 256, 256), 2)
    carry = torch.cumsum(inner[:, :, -1], 1) - inner[:, :, -1]
    blocked = (inner + carry[:, :, None]).view(64, 65536)  # a scan in another order: blocks, then carries
    half = torch.cumsum(x.half(), 1).float()  # a running sum in half precision
    return model, x, model(x), blocked, half


def test_a_float64_opinion_without_room_is_streamed_slice_by_slice_and_judges_as_the_whole_one(monkeypatch):
    # An 8.6 GB cumsum's float64 result (17 GB) does not fit beside the judge's tensors: it is
    # recomputed slice by slice each time a check reads it, never held whole anywhere.
    from harness import compare, float64_opinion
    from harness.float64_opinion import SlicedTruth, within_reference_error
    model, x, expected, blocked, half = _cumsum_case("cpu")
    whole = in_leading_slices(model, [x], expected, "cpu", parts=(4,))
    monkeypatch.setattr(float64_opinion, "_room", lambda device: 2 * 8 * x.numel() // 4 + 1)  # a quarter fits
    monkeypatch.setattr(compare, "COMPARE_CHUNK", 1 << 20)  # several chunks a slice
    streamed = in_leading_slices(model, [x], expected, "cpu", parts=(4,))
    assert isinstance(whole, torch.Tensor) and isinstance(streamed, SlicedTruth)
    assert [end - begin for begin, end, _ in streamed.slices()] == [16, 16, 16, 16]
    torch.testing.assert_close(torch.cat([p[0] for _, _, p in streamed.slices()]), whole, rtol=0, atol=0)
    for truth in (whole, streamed):
        assert within_reference_error(blocked, expected, truth)
        assert not within_reference_error(half, expected, truth)
        assert not within_reference_error(blocked.roll(1, 0), expected, truth)  # rows swapped


_held_float64_outputs = weakref.WeakSet()


class CumsumOnATightDevice(nn.Module):
    """A row cumsum on a device with room for BUDGET float64 output elements at once: beyond it,
    its float64 copy runs out of memory, as on a GPU beside the judge's other tensors."""

    BUDGET = 0

    def forward(self, x):
        out = torch.cumsum(x, dim=1)
        if x.dtype == torch.float64:
            if sum(t.numel() for t in _held_float64_outputs) + out.numel() > self.BUDGET:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            _held_float64_outputs.add(out)
        return out


def test_the_streamed_opinion_takes_slices_small_enough_for_a_reader_that_holds_one_while_the_next_is_made(
        monkeypatch):
    # A quarter of the rows fits alone but not twice: reading the opinion slice by slice holds one
    # slice while the next is computed, so quarters would run out of memory in the middle of a check.
    from harness import float64_opinion
    from harness.float64_opinion import SlicedTruth, within_reference_error
    monkeypatch.setattr(float64_opinion, "_room", lambda device: 0)  # never whole
    torch.manual_seed(0)
    x = torch.randn(64, 4096)
    model = CumsumOnATightDevice()
    monkeypatch.setattr(CumsumOnATightDevice, "BUDGET", 3 * x.numel() // 8)  # one and a half quarters
    expected = model(x)
    truth = in_leading_slices(model, [x], expected, "cpu", parts=(4, 16))
    assert isinstance(truth, SlicedTruth)
    assert truth.step == 4  # a sixteenth of the rows
    assert within_reference_error(expected + 1e-6, expected, truth)  # read to the end without running out


class Rounded(nn.Module):
    """x * scale, rounded through a large offset in the reference's own dtype."""

    def __init__(self, scale, offset):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x):
        return (x * self.scale + self.offset) - self.offset


@pytest.mark.parametrize("scale,offset,resolves,no_digit", [
    (2.0, 0.0, True, False),      # exact in fp32
    (1.0, 1e4, False, False),     # keeps three digits of x, not the tolerance's four
    (1e-3, 1e8, False, True),     # every digit of x lost
])
def test_the_streamed_opinion_answers_the_variant_questions_as_the_whole_one(monkeypatch, scale, offset, resolves,
                                                                           no_digit):
    from types import SimpleNamespace
    from harness import float64_opinion
    from harness.float64_opinion import reference_has_no_digit, reference_resolves
    torch.manual_seed(0)
    x = torch.randn(32, 4096)
    model = Rounded(scale, offset)
    expected = model(x)
    for room, kind in ((1 << 62, "Tensor"), (2 * 8 * x.numel() // 4 + 1, "SlicedTruth")):
        monkeypatch.setattr(float64_opinion, "_room", lambda device, room=room: room)
        judge = SimpleNamespace(reference=model, device="cpu", last_float64_truth=None)
        assert reference_resolves(judge, expected, [x]) == resolves
        assert reference_has_no_digit(judge, expected, [x]) == no_digit
        assert type(judge.last_float64_truth[1]).__name__ == kind


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_float64_opinion_without_room_on_the_device_is_streamed_there_and_still_judges(monkeypatch):
    from harness import float64_opinion
    from harness.float64_opinion import SlicedTruth, within_reference_error
    model, x, expected, blocked, half = _cumsum_case("cuda")
    monkeypatch.setattr(float64_opinion, "_room", lambda device: 2 * 8 * x.numel() // 4 + 1)
    truth = in_leading_slices(model, [x], expected, "cuda", parts=(1, 4))
    assert isinstance(truth, SlicedTruth)
    assert all(p[0].device.type == "cuda" for _, _, p in truth.slices())
    assert within_reference_error(blocked, expected, truth)
    assert not within_reference_error(half, expected, truth)
