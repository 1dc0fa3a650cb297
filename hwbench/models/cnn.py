"""ResNet-style CNN: bottleneck residual blocks with batch norm.

Images shrink 32x; at least 64 pixels keep 2x2 positions for batch norm to train on
with batch size 1.

The ``resnet50`` size reproduces ResNet-50 v1.5 (He et al. 2015; stride on the 3x3
convolution as in torchvision): 25,557,032 parameters for 1000 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelFamily, Shape

SIZES = {
    "tiny": {"blocks": (1, 1, 1, 1), "width": 8, "classes": 10, "image_size": 64},
    "resnet50": {"blocks": (3, 4, 6, 3), "width": 64, "classes": 1000, "image_size": 224},
    "resnet152": {"blocks": (3, 8, 36, 3), "width": 64, "classes": 1000, "image_size": 224},
}
EXPANSION = 4


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        cout = mid * EXPANSION
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


class ResNet(nn.Module):
    def __init__(self, blocks, width: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        cin = width
        for i, n in enumerate(blocks):
            mid = width * 2**i
            for j in range(n):
                stages.append(Bottleneck(cin, mid, 2 if (j == 0 and i > 0) else 1))
                cin = mid * EXPANSION
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


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


def make_batch(cfg, batch: int, shape: Shape, device, dtype):
    s = shape.image_size or cfg["image_size"]
    x = torch.randn(batch, 3, s, s, device=device, dtype=dtype)
    y = torch.randint(0, cfg["classes"], (batch,), device=device)
    return x, y


FAMILY = ModelFamily(
    name="cnn",
    description="ResNet-style CNN (bottleneck residual blocks, batch norm); resnet50 = ResNet-50",
    sizes=SIZES,
    build=lambda cfg: ResNet(cfg["blocks"], cfg["width"], cfg["classes"]),
    make_batch=make_batch,
    loss=lambda out, y: nn.functional.cross_entropy(out.float(), y),
    flops_forward=flops_forward,
    first_layer_flops=first_layer_flops,
    param_count=param_count,
    default_shape=lambda cfg: Shape(image_size=cfg["image_size"]),
    shape_kind="image_size",
)
