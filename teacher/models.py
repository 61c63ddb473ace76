"""Teacher models: the fused ResNet-34 + DeiT-Small network and the two single-branch comparison teachers.

All three are built for a fixed input size (H, W), both multiples of 32. In training they can return the
deep-supervision logits as well (``forward(x, with_aux=True)`` -> dict); ``forward(x)`` returns the final
logit map [N, 1, H, W] only, which is what the ONNX export keeps.

Nothing here touches the network: backbones are created with ``pretrained=False`` unless the caller passes
``pretrained=True`` (timm hub download) or ``weights=`` a local state-dict file.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------------------
# small building blocks


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, plus a 1x1 projection shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool -> FC -> ReLU -> FC -> sigmoid, rescales channels."""

    def __init__(self, ch: int, reduction: int = 4):
        super().__init__()
        hidden = max(8, ch // reduction)
        self.fc1 = nn.Conv2d(ch, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w))))
        return x * w


class SpatialAttention(nn.Module):
    """Spatial attention: [channel max, channel mean] -> 7x7 conv -> sigmoid, rescales positions."""

    def __init__(self, k: int = 7):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(2, 1, k, padding=k // 2, bias=False), nn.BatchNorm2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(s))


class FusionBlock(nn.Module):
    """Fuse a transformer feature t and a CNN feature g of the same resolution.

    channel attention (SE) on t, spatial attention on g, their interaction (1x1 projections of both,
    multiplied element-wise, then a 3x3 conv), all three concatenated and passed through a residual block.
    """

    def __init__(self, ch_t: int, ch_g: int, ch_int: int, ch_out: int):
        super().__init__()
        self.se = SqueezeExcite(ch_t)
        self.sa = SpatialAttention()
        self.proj_t = nn.Sequential(nn.Conv2d(ch_t, ch_int, 1, bias=False), nn.BatchNorm2d(ch_int))
        self.proj_g = nn.Sequential(nn.Conv2d(ch_g, ch_int, 1, bias=False), nn.BatchNorm2d(ch_int))
        self.interact = conv_bn_relu(ch_int, ch_int, 3)
        self.out = ResidualBlock(ch_t + ch_g + ch_int, ch_out)

    def forward(self, t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        t_att = self.se(t)
        g_att = self.sa(g)
        inter = self.interact(self.proj_t(t) * self.proj_g(g))
        return self.out(torch.cat([t_att, g_att, inter], dim=1))


class AttentionGate(nn.Module):
    """Additive attention gate (Attention U-Net): the coarser decoder map gates the finer skip map."""

    def __init__(self, ch_gate: int, ch_skip: int, ch_int: int):
        super().__init__()
        self.wg = nn.Sequential(nn.Conv2d(ch_gate, ch_int, 1, bias=False), nn.BatchNorm2d(ch_int))
        self.wx = nn.Sequential(nn.Conv2d(ch_skip, ch_int, 1, bias=False), nn.BatchNorm2d(ch_int))
        self.psi = nn.Sequential(nn.Conv2d(ch_int, 1, 1), nn.BatchNorm2d(1))

    def forward(self, gate: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.psi(F.relu(self.wg(gate) + self.wx(skip))))
        return skip * a


class GatedMerge(nn.Module):
    """Upsample the coarse map x2, gate the finer map with it, concatenate, conv block."""

    def __init__(self, ch_coarse: int, ch_fine: int, ch_out: int):
        super().__init__()
        self.gate = AttentionGate(ch_coarse, ch_fine, max(16, ch_fine // 2))
        self.block = ResidualBlock(ch_coarse + ch_fine, ch_out)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        c = up2(coarse)
        return self.block(torch.cat([c, self.gate(c, fine)], dim=1))


class SegHead(nn.Module):
    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.body = conv_bn_relu(cin, hidden, 3) if hidden > 0 else nn.Identity()
        self.cls = nn.Conv2d(hidden if hidden > 0 else cin, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.body(x))


class PUP(nn.Module):
    """SETR progressive upsampling: each step is x2 bilinear + conv3x3-BN-ReLU."""

    def __init__(self, chans: Tuple[int, ...] = (384, 128, 64)):
        super().__init__()
        self.steps = nn.ModuleList(conv_bn_relu(a, b, 3) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, x: torch.Tensor) -> list:
        outs = [x]
        for step in self.steps:
            x = step(up2(x))
            outs.append(x)
        return outs  # [1/16, 1/8, 1/4]


# ----------------------------------------------------------------------------------------------------------
# backbones


def _check_size(img_size: Tuple[int, int]) -> Tuple[int, int]:
    h, w = int(img_size[0]), int(img_size[1])
    if h % 32 or w % 32:
        raise ValueError(f"input size {h}x{w}: H and W must be multiples of 32")
    return h, w


def _load_local(path: str) -> Dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return sd


class ResNet34Encoder(nn.Module):
    """timm resnet34 cut after layer3 (or layer4): returns [layer1 1/4, layer2 1/8, layer3 1/16 (, layer4)]."""

    def __init__(self, pretrained: bool = False, weights: Optional[str] = None, use_layer4: bool = False):
        super().__init__()
        net = timm.create_model("resnet34", pretrained=pretrained, num_classes=0)
        if weights:
            sd = {k: v for k, v in _load_local(weights).items() if not k.startswith("fc.")}
            net.load_state_dict(sd, strict=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4 = net.layer4 if use_layer4 else None
        self.channels = [64, 128, 256] + ([512] if use_layer4 else [])

    def forward(self, x: torch.Tensor) -> list:
        x = self.stem(x)
        f4 = self.layer1(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        feats = [f4, f8, f16]
        if self.layer4 is not None:
            feats.append(self.layer4(f16))
        return feats


class DeiTEncoder(nn.Module):
    """timm DeiT-Small (patch 16, dim 384) with `depth` blocks, built for a fixed H x W.

    Position embeddings are made for the (H/16, W/16) grid at build time; ImageNet ones (224 -> 14x14) are
    resampled once when loaded. Returns the token grid as [N, 384, H/16, W/16].
    """

    def __init__(
        self,
        img_size: Tuple[int, int],
        depth: int = 8,
        pretrained: bool = False,
        weights: Optional[str] = None,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        h, w = _check_size(img_size)
        self.grid = (h // 16, w // 16)
        self.vit = timm.create_model(
            "deit_small_patch16_224",
            pretrained=pretrained,
            img_size=(h, w),
            depth=depth,
            num_classes=0,
            drop_path_rate=drop_path_rate,
        )
        if weights:
            sd = _load_local(weights)
            sd = {k: v for k, v in sd.items() if not k.startswith("head")}
            sd = {
                k: v
                for k, v in sd.items()
                if not (k.startswith("blocks.") and int(k.split(".")[1]) >= depth)
            }
            if "pos_embed" in sd and sd["pos_embed"].shape != self.vit.pos_embed.shape:
                sd["pos_embed"] = resample_abs_pos_embed(
                    sd["pos_embed"], new_size=list(self.grid), num_prefix_tokens=self.vit.num_prefix_tokens
                )
            self.vit.load_state_dict(sd, strict=False)
        self.dim = self.vit.embed_dim
        self.n_prefix = self.vit.num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tok = self.vit.forward_features(x)[:, self.n_prefix :]
        n = tok.shape[0]
        return tok.transpose(1, 2).reshape(n, self.dim, self.grid[0], self.grid[1])


# ----------------------------------------------------------------------------------------------------------
# the three teachers


class FusedTeacher(nn.Module):
    """ResNet-34 (stem + layer1..3) beside DeiT-S (8 blocks), PUP, fusion at 1/16, 1/8, 1/4, gated merging."""

    def __init__(
        self,
        img_size: Tuple[int, int] = (192, 256),
        vit_depth: int = 8,
        fuse_ch: Tuple[int, int, int] = (128, 128, 64),  # fusion output at 1/16, 1/8, 1/4
        int_ch: Tuple[int, int, int] = (96, 96, 64),  # interaction width at 1/16, 1/8, 1/4
        merge_ch: Tuple[int, int] = (128, 64),  # merged map at 1/8, 1/4
        head_ch: int = 64,
        pretrained: bool = False,
        cnn_weights: Optional[str] = None,
        vit_weights: Optional[str] = None,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.img_size = _check_size(img_size)
        self.cnn = ResNet34Encoder(pretrained=pretrained, weights=cnn_weights)
        self.vit = DeiTEncoder(img_size, vit_depth, pretrained, vit_weights, drop_path_rate)
        self.pup = PUP((self.vit.dim, 128, 64))
        t_ch = (self.vit.dim, 128, 64)
        g_ch = (256, 128, 64)
        self.fuse16 = FusionBlock(t_ch[0], g_ch[0], int_ch[0], fuse_ch[0])
        self.fuse8 = FusionBlock(t_ch[1], g_ch[1], int_ch[1], fuse_ch[1])
        self.fuse4 = FusionBlock(t_ch[2], g_ch[2], int_ch[2], fuse_ch[2])
        self.merge8 = GatedMerge(fuse_ch[0], fuse_ch[1], merge_ch[0])
        self.merge4 = GatedMerge(merge_ch[0], fuse_ch[2], merge_ch[1])
        self.head = SegHead(merge_ch[1], head_ch)
        # deep supervision (training only): the 1/16 fused map and the transformer-only 1/4 map
        self.aux16 = SegHead(fuse_ch[0], 0)
        self.aux_t = SegHead(t_ch[2], 0)

    def backbone_groups(self) -> Dict[str, list]:
        return {"vit": list(self.vit.parameters())}

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        h, w = x.shape[-2:]
        g4, g8, g16 = self.cnn(x)
        t16, t8, t4 = self.pup(self.vit(x))
        f16 = self.fuse16(t16, g16)
        f8 = self.fuse8(t8, g8)
        f4 = self.fuse4(t4, g4)
        m8 = self.merge8(f16, f8)
        m4 = self.merge4(m8, f4)
        final = F.interpolate(self.head(m4), size=(h, w), mode="bilinear", align_corners=False)
        if not with_aux:
            return final
        a16 = F.interpolate(self.aux16(f16), size=(h, w), mode="bilinear", align_corners=False)
        at = F.interpolate(self.aux_t(t4), size=(h, w), mode="bilinear", align_corners=False)
        return {"final": final, "aux16": a16, "aux_t": at}


class CNNTeacher(nn.Module):
    """Comparison teacher: U-Net decoder on the ResNet-34 encoder (same stem/layer1..3 pieces)."""

    def __init__(
        self,
        img_size: Tuple[int, int] = (192, 256),
        use_layer4: bool = True,
        dec_ch: Tuple[int, ...] = (256, 128, 64),
        head_ch: int = 64,
        pretrained: bool = False,
        cnn_weights: Optional[str] = None,
        **_: object,
    ):
        super().__init__()
        self.img_size = _check_size(img_size)
        self.cnn = ResNet34Encoder(pretrained=pretrained, weights=cnn_weights, use_layer4=use_layer4)
        chans = self.cnn.channels[::-1]  # deepest first
        blocks = []
        cur = chans[0]
        for skip, out in zip(chans[1:], dec_ch[-(len(chans) - 1) :]):
            blocks.append(ResidualBlock(cur + skip, out))
            cur = out
        self.dec = nn.ModuleList(blocks)
        self.head = SegHead(cur, head_ch)

    def backbone_groups(self) -> Dict[str, list]:
        return {}

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        h, w = x.shape[-2:]
        feats = self.cnn(x)[::-1]
        y = feats[0]
        for blk, skip in zip(self.dec, feats[1:]):
            y = blk(torch.cat([up2(y), skip], dim=1))
        final = F.interpolate(self.head(y), size=(h, w), mode="bilinear", align_corners=False)
        return {"final": final} if with_aux else final


class TransformerTeacher(nn.Module):
    """Comparison teacher: DeiT-S (same 8 blocks) + SETR-PUP to 1/4, head, x4 upsampling."""

    def __init__(
        self,
        img_size: Tuple[int, int] = (192, 256),
        vit_depth: int = 8,
        head_ch: int = 64,
        pretrained: bool = False,
        vit_weights: Optional[str] = None,
        drop_path_rate: float = 0.0,
        **_: object,
    ):
        super().__init__()
        self.img_size = _check_size(img_size)
        self.vit = DeiTEncoder(img_size, vit_depth, pretrained, vit_weights, drop_path_rate)
        self.pup = PUP((self.vit.dim, 128, 64))
        self.head = SegHead(64, head_ch)

    def backbone_groups(self) -> Dict[str, list]:
        return {"vit": list(self.vit.parameters())}

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        h, w = x.shape[-2:]
        t4 = self.pup(self.vit(x))[-1]
        final = F.interpolate(self.head(t4), size=(h, w), mode="bilinear", align_corners=False)
        return {"final": final} if with_aux else final


MODELS = {"fused": FusedTeacher, "cnn": CNNTeacher, "transformer": TransformerTeacher}


def build_model(name: str, img_size: Tuple[int, int] = (192, 256), **kwargs) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    for k in ("fuse_ch", "int_ch", "merge_ch", "dec_ch"):
        if k in kwargs and kwargs[k] is not None:
            kwargs[k] = tuple(kwargs[k])
    return MODELS[name](img_size=tuple(img_size), **kwargs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
