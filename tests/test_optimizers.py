import pytest
import torch
from hydra.errors import MissingConfigException

from cnnlab.training.optimizers import build_optimizer

EXPECTED = {
    "sgd": (torch.optim.SGD, {"lr": 0.001, "momentum": 0.0}),
    "momentum": (torch.optim.SGD, {"lr": 0.001, "momentum": 0.9}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 0.001, "weight_decay": 0.0}),
    "adam": (torch.optim.Adam, {"lr": 0.001, "weight_decay": 0.0}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_optimizer_config_builds_the_right_optimizer(make_cfg, name):
    cfg = make_cfg(f"optimizer={name}")
    optimizer = build_optimizer(cfg.optimizer, [torch.nn.Parameter(torch.zeros(2))])
    cls, hyper = EXPECTED[name]
    assert type(optimizer) is cls
    for key, value in hyper.items():
        assert optimizer.defaults[key] == value


def test_adam_is_fused_for_training_and_unfused_in_the_notebook_replay(make_cfg):
    param = [torch.nn.Parameter(torch.zeros(2))]
    assert build_optimizer(make_cfg("optimizer=adam").optimizer, param).defaults["fused"] is True
    replay_adam = make_cfg(config_name="replay").optimizers.adam
    assert not build_optimizer(replay_adam, param).defaults["fused"]


def test_overrides_reach_the_optimizer(make_cfg):
    cfg = make_cfg("optimizer=adam", "optimizer.lr=0.01", "optimizer.weight_decay=0.1")
    optimizer = build_optimizer(cfg.optimizer, [torch.nn.Parameter(torch.zeros(2))])
    assert optimizer.defaults["lr"] == 0.01 and optimizer.defaults["weight_decay"] == 0.1


def test_unknown_optimizer_is_hydras_error_listing_choices(make_cfg):
    with pytest.raises(MissingConfigException) as err:
        make_cfg("optimizer=adagrad")
    assert all(name in str(err.value) for name in EXPECTED)
