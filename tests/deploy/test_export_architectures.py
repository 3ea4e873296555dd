"""ONNX export of standard architectures: torchvision ResNet, MobileNet, VGG and a timm ViT.

Each is converted by :func:`convert_model` (what :func:`export_model` returns the bytes of)
with the default ``auto`` exporter and run in
onnxruntime at batch sizes other than the sample's, against PyTorch; VGG's
``AdaptiveAvgPool2d((7, 7))`` on a 1x1 map is what the TorchScript exporter cannot convert, so
it falls back to the dynamo exporter. All are slow: building and converting real models takes
seconds.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from prune_info.deploy.onnx import convert_model
from prune_info.deploy.onnx_runtime import ort_session, run_onnx


def _resnet18():
    from torchvision.models import resnet18
    return resnet18(num_classes=10), (3, 32, 32)


def _mobilenet_v2():
    from torchvision.models import mobilenet_v2
    return mobilenet_v2(num_classes=10), (3, 32, 32)


def _vgg11_bn():
    """VGG-11-bn's features and adaptive pooling, with a narrow classifier: the 25088x4096 one
    made a 490 MiB file and 16 s of the suite, and is not what the fallback is about."""
    from torchvision.models import vgg11_bn
    model = vgg11_bn(num_classes=10)
    model.classifier = torch.nn.Sequential(torch.nn.Linear(512 * 7 * 7, 64), torch.nn.ReLU(),
                                           torch.nn.Linear(64, 10))
    return model, (3, 32, 32)


def _vit_tiny():
    import timm
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                             patch_size=4, in_chans=1, num_classes=10), (1, 32, 32)


ARCHITECTURES = {"resnet18": _resnet18, "mobilenet_v2": _mobilenet_v2, "vgg11_bn": _vgg11_bn,
                 "vit_tiny": _vit_tiny}


def _model(name):
    torch.manual_seed(0)
    model, shape = ARCHITECTURES[name]()
    model.eval()
    if name == "vgg11_bn":  # nonzero running statistics, so BatchNorm is really exercised
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model, shape


#: The exporter ``auto`` ends with, and why it left TorchScript (None: it did not).
EXPECTED = {
    "resnet18": ("torchscript", None),
    "mobilenet_v2": ("torchscript", None),
    "vgg11_bn": ("dynamo", "the torchscript exporter fails: Unsupported: ONNX export of operator "
                           "adaptive_avg_pool2d, output size that are not factor of input size; "
                           "used the dynamo exporter"),
    "vit_tiny": ("torchscript", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture_exports_with_dynamic_batch(name):
    model, shape = _model(name)
    done = convert_model(model, torch.randn(4, *shape))  # what export_model returns .data of
    assert (done.exporter, done.fallback) == EXPECTED[name]
    assert done.max_abs_diff < 1e-4 and done.batch_sizes == [4, 1]
    data = done.data
    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    for value in (proto.graph.input[0], proto.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == \
        list(shape)
    session = ort_session(data)
    generator = torch.Generator().manual_seed(1)
    for n in (1, 5):
        x = torch.randn(n, *shape, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        got = run_onnx(session, x)
        assert got.shape == (n, 10)
        assert np.abs(got - expected).max() < 1e-4

