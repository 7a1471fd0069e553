"""The pure pieces of training in train_parts: lookahead's schedule and its pull towards the
slow weights (the other pieces are tested with the trainer)."""

import torch
from torch import nn

from hw0cli.train.parts import LOOKAHEAD_DECAY, LOOKAHEAD_EVERY, Lookahead


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_lookahead_pulls_every_fifth_step_and_ends_on_the_slow_weights():
    model = _model()
    la = Lookahead(model, total_steps=10)
    start = {k: v.clone() for k, v in la.live.items()}
    for step in range(1, 11):
        with torch.no_grad():
            for v in la.live.values():
                v.add_(1.0)  # a "step" of +1 on every weight and statistic
        fast = {k: v.clone() for k, v in la.live.items()}
        la.after_step(step)
        if step % LOOKAHEAD_EVERY:
            assert all(torch.equal(la.live[k], fast[k]) for k in fast)  # untouched between
            continue
        d = LOOKAHEAD_DECAY * (step / 10) ** 3
        for k in fast:
            slow = start[k] + (1 - d) * (fast[k] - start[k])
            torch.testing.assert_close(la.slow[k], slow)
            torch.testing.assert_close(la.live[k], slow)  # training restarts from the average
        start = {k: v.clone() for k, v in la.slow.items()}
    assert all(torch.equal(la.live[k], la.slow[k]) for k in la.live)
    # integer buffers (BatchNorm's batch counter) are not averaged
    assert "1.num_batches_tracked" not in la.live and "1.running_var" in la.live


def test_lookahead_copies_the_last_average_after_the_final_step():
    model = _model()
    la = Lookahead(model, total_steps=7)  # 7 is not a multiple of 5: the last pull was at 5
    for step in range(1, 8):
        with torch.no_grad():
            for v in la.live.values():
                v.add_(1.0)
        la.after_step(step)
        if step == 5:
            at5 = {k: v.clone() for k, v in la.slow.items()}
    assert all(torch.equal(la.live[k], at5[k]) for k in la.live)  # steps 6, 7 are dropped


def test_lookahead_state_round_trips():
    model = _model()
    la = Lookahead(model, total_steps=10)
    for step in range(1, 6):
        with torch.no_grad():
            for v in la.live.values():
                v.mul_(1.5)
        la.after_step(step)
    saved = {k: v.numpy().copy() for k, v in la.slow.items()}
    other = Lookahead(_model(), total_steps=10)
    other.load(saved)
    assert all(torch.equal(other.slow[k], la.slow[k]) for k in saved)
