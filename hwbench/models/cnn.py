"""ResNet-style CNN: bottleneck residual blocks with batch norm.

Images shrink 32x; at least 64 pixels keep 2x2 positions for batch norm to train on
with batch size 1.

The ``resnet50`` size reproduces ResNet-50 v1.5 (He et al. 2015; stride on the 3x3
convolution as in torchvision): 25,557,032 parameters for 1000 classes.
"""

from __future__ import annotations

from .base import Shape, declare

SIZES = {
    "tiny": {"blocks": (1, 1, 1, 1), "width": 8, "classes": 10, "image_size": 64},
    "resnet50": {"blocks": (3, 4, 6, 3), "width": 64, "classes": 1000, "image_size": 224},
    "resnet152": {"blocks": (3, 8, 36, 3), "width": 64, "classes": 1000, "image_size": 224},
}
EXPANSION = 4


def _blocks(cfg):
    """Yield (cin, mid, cout, stride, has_downsample) for every bottleneck block."""
    cin = cfg["width"]
    for i, n in enumerate(cfg["blocks"]):
        mid = cfg["width"] * 2**i
        cout = mid * EXPANSION
        for j in range(n):
            stride = 2 if (j == 0 and i > 0) else 1
            yield cin, mid, cout, stride, stride != 1 or cin != cout
            cin = cout


def _convs(cfg, image: int):
    """Yield (cin, cout, k, out_hw) for every convolution, walking the shapes."""
    w = cfg["width"]
    hw = (image + 2 * 3 - 7) // 2 + 1  # stem conv, stride 2
    yield 3, w, 7, hw
    hw = (hw + 2 - 3) // 2 + 1  # max pool
    for cin, mid, cout, stride, down in _blocks(cfg):
        out_hw = (hw + 2 - 3) // stride + 1
        yield cin, mid, 1, hw
        yield mid, mid, 3, out_hw
        yield mid, cout, 1, out_hw
        if down:
            yield cin, cout, 1, out_hw
        hw = out_hw


def flops_forward(cfg, shape: Shape) -> float:
    image = shape.image_size or cfg["image_size"]
    conv = sum(2 * ci * co * k * k * hw * hw for ci, co, k, hw in _convs(cfg, image))
    fc_in = cfg["width"] * 2 ** (len(cfg["blocks"]) - 1) * EXPANSION
    return float(conv + 2 * fc_in * cfg["classes"])


def first_layer_flops(cfg, shape: Shape) -> float:
    ci, co, k, hw = next(_convs(cfg, shape.image_size or cfg["image_size"]))
    return float(2 * ci * co * k * k * hw * hw)


def param_count(cfg) -> int:
    w = cfg["width"]
    total = 3 * w * 49 + 2 * w  # stem conv + bn
    cout = w
    for cin, mid, cout, _, down in _blocks(cfg):
        # three convolutions, each followed by batch norm (weight + bias)
        total += cin * mid + 2 * mid + mid * mid * 9 + 2 * mid + mid * cout + 2 * cout
        if down:
            total += cin * cout + 2 * cout
    return total + cout * cfg["classes"] + cfg["classes"]


FAMILY = declare(
    globals(), "cnn",
    "ResNet-style CNN (bottleneck residual blocks, batch norm); resnet50 = ResNet-50",
    inputs="image", output="classes",
)
