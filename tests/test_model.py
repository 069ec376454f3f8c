import copy

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models import (
    SimpleCNN,
    analysis_copy,
    build_model,
    count_neurons,
    count_parameters,
    fold_batch_norm,
    layer_table,
)
from cnnlab.models.input_gradient import InputGradConv2d, fast_input_gradient


@pytest.mark.parametrize(
    ("batch_norm", "total", "conv", "fc"),
    [(False, 799_078, 9_568, 789_510), (True, 800_206, 9_696, 790_510)],
)
def test_parameter_counts_match_the_report(batch_norm, total, conv, fc):
    assert count_parameters(SimpleCNN(batch_norm)) == {"conv": conv, "fc": fc, "total": total}


@pytest.mark.parametrize("batch_norm", [False, True])
def test_neuron_counts_match_the_report(batch_norm):
    assert count_neurons(SimpleCNN(batch_norm)) == {"conv": 31_360, "fc": 510, "total": 31_870}


@pytest.mark.parametrize("batch_norm", [False, True])
def test_output_shape_and_layer_layout(batch_norm):
    model = SimpleCNN(batch_norm).eval()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    second = 4 if batch_norm else 3
    assert isinstance(model.conv_block[0], nn.Conv2d) and isinstance(model.conv_block[second], nn.Conv2d)
    assert model.layer("conv1") is model.conv_block[0]
    assert model.layer("conv2") is model.conv_block[second]
    assert model.layer("fc2").out_features == 10
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.fc_block) == batch_norm


def test_unknown_layer_names_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"layer='conv3'.*conv1, conv2, fc1, fc2"):
        SimpleCNN().layer("conv3")


def test_build_model_from_config_and_layer_table():
    model = build_model({"name": "simple_cnn", "batch_norm": True})
    table = layer_table(model)
    assert "800,206" in table and "[1, 32, 28, 28]" in table
    with pytest.raises(ConfigError, match="model.name"):
        build_model({"name": "resnet", "batch_norm": False})


@pytest.mark.parametrize("batch_norm", [False, True])
def test_pooling_before_relu_is_the_notebooks_relu_then_pool_bit_for_bit(batch_norm):
    """The blocks pool before their ReLU for speed; outputs and every gradient must equal the notebook's order."""
    torch.manual_seed(0)
    model = SimpleCNN(batch_norm).train()
    notebook = SimpleCNN(batch_norm).train()
    notebook.load_state_dict(model.state_dict())
    layers = list(notebook.conv_block)
    for i in [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]:
        layers[i], layers[i + 1] = layers[i + 1], layers[i]  # pool, ReLU -> ReLU, pool
    notebook.conv_block = nn.Sequential(*layers)
    assert [type(m) for m in notebook.conv_block][1 + batch_norm : 3 + batch_norm] == [nn.ReLU, nn.MaxPool2d]
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for net in (model, notebook):
        torch.nn.functional.cross_entropy(net(x), y).backward()
    assert torch.equal(model(x), notebook(x))
    for (name, p), q in zip(model.named_parameters(), notebook.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name


@pytest.mark.parametrize("batch_norm", [False, True])
def test_folded_batch_norm_is_the_eval_mode_function_and_leaves_the_model_alone(batch_norm):
    torch.manual_seed(0)
    model = SimpleCNN(batch_norm).train()
    model(torch.randn(64, 1, 28, 28) * 2 + 1)  # running statistics far from the initial 0 / 1
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == batch_norm


def input_gradient(model, x):
    x = x.clone().requires_grad_(True)
    model(x).square().sum().backward()
    return x.grad


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(("kernel", "padding"), [(3, 0), (3, 1), (3, 2), ((3, 5), (1, 2))])
def test_fast_input_gradient_of_a_frozen_conv_is_autograds(memory_format, kernel, padding):
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 8, kernel, padding=padding), nn.ReLU(), nn.Conv2d(8, 4, 5, padding=2))
    plain = plain.to(memory_format=memory_format).requires_grad_(False)
    fast = fast_input_gradient(copy.deepcopy(plain))
    assert [type(m) for m in fast] == [InputGradConv2d, nn.ReLU, nn.Conv2d]  # only the one-channel input conv changes
    assert fast.state_dict().keys() == plain.state_dict().keys()
    x = torch.rand(3, 1, 17, 13).to(memory_format=memory_format)
    assert torch.equal(fast(x), plain(x))
    torch.testing.assert_close(input_gradient(fast, x), input_gradient(plain, x), rtol=1e-5, atol=1e-6)


def test_fast_input_gradient_of_an_unbatched_image_and_under_bf16_autocast():
    torch.manual_seed(0)
    plain = nn.Conv2d(1, 8, 3, padding=1).requires_grad_(False)
    fast = fast_input_gradient(copy.deepcopy(plain))
    image = torch.rand(1, 9, 9)
    torch.testing.assert_close(input_gradient(fast, image), input_gradient(plain, image), rtol=1e-5, atol=1e-6)
    grads = []
    for net in (plain, fast):  # forward under autocast, backward after it, as training loops do
        x = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = net(x).float().square().sum()
        loss.backward()
        grads.append(x.grad)
    assert grads[1].dtype == torch.float32
    torch.testing.assert_close(grads[1], grads[0], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("trained", ["all", "biases"])
def test_fast_input_gradient_trains_like_the_plain_model(trained):
    """While any of its parameters needs a gradient the converted conv is a plain Conv2d: the same gradients."""
    torch.manual_seed(0)
    plain = SimpleCNN(batch_norm=True)
    if trained == "biases":  # weights frozen, biases trained: the first conv's bias gradient must not be lost
        for name, param in plain.named_parameters():
            param.requires_grad_(name.endswith("bias"))
    fast = fast_input_gradient(copy.deepcopy(plain))
    assert isinstance(fast.conv_block[0], InputGradConv2d) and type(fast.conv_block[4]) is nn.Conv2d
    x = torch.rand(4, 1, 28, 28)
    for net in (plain, fast):
        net(x).logsumexp(dim=1).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters(), strict=True):
        if p.requires_grad:
            assert torch.equal(p.grad, q.grad), name
        else:
            assert p.grad is None and q.grad is None, name


def test_the_analysis_copy_folds_batch_norm_and_converts_the_first_conv_only():
    model = SimpleCNN(batch_norm=True).eval()
    copied = analysis_copy(model)
    assert [type(m) for m in copied.layers.values()] == [InputGradConv2d, nn.Conv2d, nn.Linear, nn.Linear]
    assert not any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in copied.modules())
    assert type(model.layers["conv1"]) is nn.Conv2d  # the trained model is left as it was
    assert count_neurons(copied) == count_neurons(model)
