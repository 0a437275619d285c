"""bench/train.py on a tiny Qwen2, so the trainer benchmark cannot rot: its JSON line has every
figure, PyTorch and sqjax train the same model on the same batch (their losses agree step by
step), and the profile attributes the step's time to phases and components."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
def test_train_bench_quick_tiny(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import train

    cases = "sft_4x32,dpo_2x32"
    argv = ["train.py", "--quick", "--tiny", "--cold", "--cases", cases, "--profile-steps", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    train.main()
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ratio_vs_torch"] == out["sft_4x32"]["ratio"] > 0
    assert out["peak_gflops"] > 0 and out["matmul_parameters"] < out["model_parameters"]
    for case in cases.split(","):
        figures = out[case]
        print(case, figures)
        # same weights, batch, loss and AdamW: float32 rounding apart, the same losses
        assert figures["max_loss_diff"] < 1e-4
        assert figures["losses_first_last"][1] < figures["losses_first_last"][0]  # it trains
        assert 0 < figures["mfu_sqjax"] < 1 and figures["sqjax_tok_s"] > 0
        profile = out["profile"][case]
        assert profile["unattributed_ms"] == 0
        assert set(profile["by_phase_ms"]) >= {"forward", "backward", "optimizer"}
        assert {"lm_head", "attention", "mlp"} <= set(profile["by_component_ms"])
        assert 0 < profile["matmul_ms"] < profile["ops_ms"]
