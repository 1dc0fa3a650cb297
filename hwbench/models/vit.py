"""Vision Transformer (Dosovitskiy et al. 2020): non-overlapping patches embedded by a
strided convolution, a class token, learned position embeddings, pre-LN transformer
layers (GELU MLP), a final LayerNorm and a linear head on the class token.

``b16`` reproduces ViT-B/16 at 224 pixels with a 1000-class head (as timm's
``vit_base_patch16_224``): 86,567,656 parameters; ``s16`` ViT-S/16 (22,050,664), the
student DeiT distils from a larger teacher (``distill:s16`` on ``vit:b16``). Other image sizes interpolate the
position embeddings to the new patch grid (bicubic, as timm's ``dynamic_img_size``);
pixels beyond a whole patch are dropped by the patch convolution.
"""

from __future__ import annotations

from .base import Config, Shape, declare
from .transformer import layer_flops, layer_params

SIZES = {
    "tiny": {"image_size": 64, "patch": 16, "d": 64, "layers": 2, "heads": 2, "ffn": 256, "classes": 10},
    "s16": {"image_size": 224, "patch": 16, "d": 384, "layers": 12, "heads": 6, "ffn": 1536, "classes": 1000},
    "b16": {"image_size": 224, "patch": 16, "d": 768, "layers": 12, "heads": 12, "ffn": 3072, "classes": 1000},
}


def patches(cfg: Config, image: int) -> int:
    """Patches per image side x side."""
    return (image // cfg["patch"]) ** 2


def param_count(cfg: Config) -> int:
    d, p = cfg["d"], cfg["patch"]
    embed = 3 * p * p * d + d + d + (patches(cfg, cfg["image_size"]) + 1) * d  # conv, class token, positions
    return embed + cfg["layers"] * layer_params(d, cfg["ffn"]) + 2 * d + d * cfg["classes"] + cfg["classes"]


def first_layer_flops(cfg: Config, shape: Shape) -> float:
    """The patch convolution: its input (the image) needs no gradient."""
    image = shape.image_size or cfg["image_size"]
    return 2.0 * patches(cfg, image) * 3 * cfg["patch"] ** 2 * cfg["d"]


def flops_forward(cfg: Config, shape: Shape) -> float:
    image = shape.image_size or cfg["image_size"]
    tokens = patches(cfg, image) + 1
    d = cfg["d"]
    return first_layer_flops(cfg, shape) + cfg["layers"] * layer_flops(d, cfg["ffn"], tokens) + 2.0 * d * cfg["classes"]


FAMILY = declare(
    globals(), "vit",
    "Vision Transformer (patch embedding, pre-LN layers, class token); b16 = ViT-B/16, s16 = ViT-S/16 at 224 px",
    inputs="image", output="classes",
)
