"""The independent timing check's verdict on the harness's figures (bench/do_bench_check.py)."""
from bench.do_bench_check import agreement


def test_figures_within_ten_percent_agree_and_others_are_called_out():
    harness_rows = [{"task": "relu", "ours_ms": 4.27, "launch_us": 150.0},
                    {"task": "matmul", "ours_ms": 3.00, "launch_us": 100.0}]
    rows = [{"task": "relu", "do_bench": 4.30}, {"task": "matmul", "do_bench": 3.60}]
    text = agreement(rows, harness_rows, "do_bench")
    assert "| relu | 4.2700 | 4.3000 | 0.993 | yes |" in text
    assert "| matmul | 3.0000 | 3.6000 | 0.833 | NO |" in text
    assert text.endswith("1 of 2 tasks agree within 10 %.")


def test_a_launch_bound_kernel_is_named_as_such_not_just_disagreeing():
    # 95 µs on the device, 130 µs to launch: back to back, do_bench sees the host's pace
    harness_rows = [{"task": "softmax", "ours_ms": 0.095, "launch_us": 130.0}]
    text = agreement([{"task": "softmax", "do_bench": 0.136}], harness_rows, "do_bench")
    assert "NO: launch-bound, 130 µs of host time per call" in text
    assert "1 of the others are launch-bound" in text


def test_only_selects_a_task_by_its_exact_name_and_others_by_part_of_theirs():
    from pathlib import Path

    from bench.selection import matches
    tasks = [Path(f"{name}.py") for name in ("act_relu", "act_relu_inplace", "softmax_lastdim", "log_softmax_lastdim")]
    assert [t.stem for t in tasks if matches(t, "act_relu", tasks)] == ["act_relu"]
    assert [t.stem for t in tasks if matches(t, "softmax", tasks)] == ["softmax_lastdim", "log_softmax_lastdim"]
