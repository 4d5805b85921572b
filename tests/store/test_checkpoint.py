import random

import torch

from brts.store import checkpoint


def test_save_load_restores_weights_optimizer_rng_and_prunes(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    for step in (1, 2, 3):
        torch.manual_seed(step)
        random.seed(step)
        checkpoint.save(tmp_path, model, opt, checkpoint.TrainState(step, {"tokens": float(step)}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000002", "step_000003"]
    expected_draw = torch.rand(1)
    expected_py = random.random()
    saved = {k: v.clone() for k, v in model.state_dict().items()}

    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    state = checkpoint.load(checkpoint.latest(tmp_path), fresh, fresh_opt)
    assert state.step == 3 and state.counters == {"tokens": 3.0}
    assert torch.rand(1).item() == expected_draw.item() and random.random() == expected_py
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, saved[k])
    assert fresh_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_latest_ignores_half_written_folders(tmp_path):
    (tmp_path / "step_000009").mkdir()  # no checkpoint.pt: an interrupted write
    assert checkpoint.latest(tmp_path) is None
    assert checkpoint.latest(tmp_path / "missing") is None
