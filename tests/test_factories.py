"""Model factories (torchvision, timm, user functions), input adaptation and factory training."""

import pytest
import torch
import torchvision

import prune_info as pi
from prune_info.data import adapt_inputs, in_memory, load_dataset
from prune_info.errors import PruneInfoError
from prune_info.training.loop import augment_batch, check_model_takes
from prune_info.zoo import build_factory_model, factory_spec, parse_model_kwargs


def test_model_kwargs_are_python_literals_with_strings_as_fallback():
    assert parse_model_kwargs("num_classes=10,img_size=(28, 28),drop_rate=0.1,name=gelu,"
                              "flag=True") == {"num_classes": 10, "img_size": (28, 28),
                                               "drop_rate": 0.1, "name": "gelu", "flag": True}
    assert parse_model_kwargs(None) == {} and parse_model_kwargs("  ") == {}


@pytest.mark.parametrize("text", ["num_classes", "=3", "1x=2", "a=1,,b=2"])
def test_unreadable_model_kwargs_are_named(text):
    with pytest.raises(PruneInfoError, match="`model_kwargs`: cannot read"):
        parse_model_kwargs(text)


def test_a_torchvision_factory_builds_with_its_kwargs():
    model = build_factory_model("torchvision.models:mobilenet_v2", {"num_classes": 7})
    assert isinstance(model, torchvision.models.MobileNetV2)
    assert model.classifier[-1].out_features == 7
    assert factory_spec("torchvision.models:mobilenet_v2", {"num_classes": 7}) == (
        "torchvision.models:mobilenet_v2(num_classes=7)")


def test_a_timm_name_builds_without_weights_and_a_wrong_one_lists_close_names():
    model = build_factory_model("timm:vit_tiny_patch16_224",
                                {"img_size": 28, "patch_size": 7, "in_chans": 1,
                                 "num_classes": 10})
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(PruneInfoError, match="timm has no model 'vit_tinny_patch16_224'; "
                                             "close names: vit_tiny_patch16_224"):
        build_factory_model("timm:vit_tinny_patch16_224")


@pytest.mark.parametrize("factory, kwargs, match", [
    ("torchvision.models:resnet18", {"weights": "DEFAULT"}, "would download weights"),
    ("timm:resnet18", {"pretrained": True}, "would download weights"),
    ("json:loads", {}, r"json:loads raised TypeError: .*; check `model_kwargs` \(none given\)"),
    ("json:dumps", {"obj": 1}, "returned str, not an nn.Module"),
    ("no_such_package_xyz.models:net", {}, "cannot import no_such_package_xyz"),
    ("torchvision.models:no_such_net", {}, "has no function 'no_such_net'"),
    ("torchvision.models", {}, "not of the form package.module:function"),
    ("torchvision.models:resnet18", {"num_klasses": 3}, "raised TypeError"),
])
def test_a_bad_factory_is_one_clear_error(factory, kwargs, match):
    with pytest.raises(PruneInfoError, match=match):
        build_factory_model(factory, kwargs)


def test_adapted_inputs_repeat_the_channel_and_resize():
    digits = load_dataset("digits")
    same = adapt_inputs(digits, digits.input_shape)
    assert same is digits
    wide = adapt_inputs(digits, (3, 8, 8))
    assert wide.input_shape == (3, 8, 8) and wide.native_shape == (1, 8, 8)
    for c in range(3):
        assert torch.equal(in_memory(wide.train).x[:, c], digits.train.x[:, 0])
    big = adapt_inputs(digits, (1, 16, 16))
    assert big.input_shape == (1, 16, 16)
    # Bilinear upsampling keeps a constant image constant and the mean close.
    assert abs(float(in_memory(big.train).x.mean()) - float(digits.train.x.mean())) < 0.02
    assert big.describe()["native_input_shape"] == [1, 8, 8]
    assert "native_input_shape" not in digits.describe()


@pytest.mark.parametrize("shape, match", [((3, 8), "three positive integers"),
                                          ((0, 8, 8), "three positive integers"),
                                          (("a", 8, 8), "three positive integers")])
def test_a_bad_input_shape_is_refused(shape, match):
    with pytest.raises(PruneInfoError, match=match):
        adapt_inputs(load_dataset("digits"), shape)


def test_several_channels_are_not_turned_into_another_number():
    three = adapt_inputs(load_dataset("digits"), (3, 8, 8))
    with pytest.raises(PruneInfoError, match="turn 3 into 2"):
        adapt_inputs(three, (2, 8, 8))


def test_a_model_that_cannot_take_the_data_gets_the_fix():
    digits = load_dataset("digits")
    model = build_factory_model("torchvision.models:resnet18", {"num_classes": 10})
    with pytest.raises(PruneInfoError, match="cannot take digits samples of shape 1x8x8.*"
                                             "`input_shape`.*`factory_kwargs`"):
        check_model_takes(model, digits)
    with pytest.raises(PruneInfoError, match=r"outputs \[2, 1000\].*num_classes=10"):
        check_model_takes(build_factory_model("torchvision.models:resnet18"),
                          adapt_inputs(digits, (3, 8, 8)))


def test_augmentation_is_seeded_and_moves_content_by_whole_pixels():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    a = augment_batch(x, torch.Generator().manual_seed(0))
    b = augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    for i in range(2):  # every non-zero value of the output is a value of the input
        values = set(a[i].flatten().tolist()) - {0.0}
        assert values <= set(x[i].flatten().tolist())
    assert augment_batch(torch.zeros(3, 5), torch.Generator()).shape == (3, 5)


@pytest.fixture(scope="module")
def resnet_ckpt():
    data = load_dataset("digits", input_shape=(3, 16, 16))
    config = pi.TrainConfig.for_factory_models(epochs=1, batch_size=256, save_rewind_steps=(1,))
    return data, pi.train_model(data, factory="torchvision.models:resnet18",
                                factory_kwargs={"num_classes": 10}, config=config,
                                progress=False)


def test_a_trained_factory_model_rebuilds_from_its_checkpoint(resnet_ckpt, tmp_path):
    data, ckpt = resnet_ckpt
    assert ckpt.factory == "torchvision.models:resnet18"
    assert ckpt.init_state_dict is not None and sorted(ckpt.rewind_state_dicts) == [1]
    assert ckpt.dataset["input_shape"] == [3, 16, 16]
    path = tmp_path / "r18.pt"
    pi.save_checkpoint(ckpt, path)
    raw = torch.load(path, weights_only=True)
    assert raw["factory_kwargs"] == {"num_classes": 10}
    again = pi.load_checkpoint(path)
    x = data.test.head(8).x
    assert torch.equal(again.model(x), ckpt.model.eval()(x))
    assert again.spec.startswith("torchvision.models:resnet18(num_classes=10) [64-64")


def test_a_state_dict_that_does_not_fit_the_factory_names_the_key(resnet_ckpt, tmp_path):
    _, ckpt = resnet_ckpt
    path = tmp_path / "sd.pt"
    torch.save(ckpt.model.state_dict(), path)
    with pytest.raises(PruneInfoError, match=r"fc\.weight.*torch.Size\(\[10, 512\]\).*"
                                             r"torch.Size\(\[5, 512\]\)"):
        pi.load_checkpoint(path, factory="torchvision.models:resnet18",
                           factory_kwargs={"num_classes": 5})
    loaded = pi.load_checkpoint(path, factory="torchvision.models:resnet18",
                                factory_kwargs={"num_classes": 10})
    assert loaded.factory_kwargs == {"num_classes": 10}


def test_cli_trains_a_factory_model_and_refuses_a_misfit_in_one_line(run_cli, tmp_path):
    out = tmp_path / "m.pt"
    code, _, stderr = run_cli("train", "--data", "digits", "--model",
                              "torchvision.models:resnet18", "--model-kwargs", "num_classes=10",
                              "--epochs", "1", "-o", str(out), "--quiet")
    assert code == 2 and stderr.count("\n") == 1 and not out.exists()
    assert "cannot take digits samples of shape 1x8x8" in stderr and "--input-shape" in stderr
    assert "--model-kwargs" in stderr
    code, _, stderr = run_cli("train", "--data", "digits", "--model-kwargs", "num_classes=10",
                              "-o", str(out))
    assert code == 2 and "pass --model too" in stderr and not out.exists()


def test_a_rewind_step_beyond_training_is_refused_before_training():
    data = load_dataset("digits")
    config = pi.TrainConfig(epochs=1, save_rewind_steps=(10**6,))
    with pytest.raises(PruneInfoError, match="is beyond the 34 steps of training"):
        pi.train_model(data, "64-8-10", config=config, progress=False)


def test_run_identity_of_factory_kwargs_survives_json():
    import json

    from prune_info.experiments.pipeline import RunOptions

    options = RunOptions(arch=None, factory="timm:vit_tiny_patch16_224",
                         factory_kwargs={"patch_size": (4, 4)})
    identity = options.identity()
    assert json.loads(json.dumps(identity)) == identity


def test_input_shape_for_a_factory_state_dict_without_data(run_cli, tmp_path):
    model = build_factory_model("torchvision.models:resnet18", {"num_classes": 10})
    path, out = tmp_path / "sd.pt", tmp_path / "p.pt"
    torch.save(model.state_dict(), path)
    code, _, stderr = run_cli("prune", str(path), "--model", "torchvision.models:resnet18",
                              "--model-kwargs", "num_classes=10", "--input-shape", "3,32,32",
                              "--criterion", "magnitude", "--amount", "0.5", "-o", str(out))
    assert code == 0, stderr
    assert out.exists()
