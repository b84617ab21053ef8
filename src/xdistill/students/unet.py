"""``unet``: a small class-conditional U-Net denoiser, the generation kind's network (teacher and students).

``velocity(x [N, C, H, W], t [N] in [0, 1], y [N] int, guidance [N] | None) -> [N, C, H, W]``: the
predicted velocity of the rectified flow at time ``t`` (``xdistill.kinds.generation.flow``). The label
``y == num_classes`` is the null class of classifier-free guidance. With ``guidance_embedding=True`` the
network also reads the guidance scale through a zero-initialised embedding added to the time embedding
(the adapters of guidance distillation start as the identity).

Residual blocks (GroupNorm, SiLU, 3x3 convolutions) at each resolution, time and class embeddings added
inside every block, self-attention at the lowest resolution; down by strided convolution, up by nearest
interpolation and a convolution, skip connections concatenated. ``mults`` sets the resolutions and their
channels (each entry after the first halves the size); wide low resolutions hold parameters at little cost.

It also honours the classification interface of every student: ``forward_features`` pools the last hidden
activation and the predicted velocity of the clean image (null label, t = 0), and ``head`` maps them to
``num_classes``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from xdistill.errors import XDistillError
from xdistill.students.build import int_at_least, raise_problems, register_student


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding [N, dim] of times t [N] in [0, 1] (scaled by 1000, as for integer DDPM steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(attended.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """Class-conditional U-Net predicting a velocity; see the module docstring."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = 16,
                 mults: tuple[int, ...] = (1, 2, 4), blocks: int = 1, attention: bool = True,
                 guidance_embedding: bool = False) -> None:
        super().__init__()
        channels = input_shape[0]
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.config = {"width": width, "mults": list(mults), "blocks": blocks, "attention": attention,
                       "guidance_embedding": guidance_embedding}
        emb_dim = 4 * width
        self.time = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(num_classes + 1, emb_dim)  # the last row is the null class
        self.guidance = None
        if guidance_embedding:
            self.guidance = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            nn.init.zeros_(self.guidance[-1].weight)
            nn.init.zeros_(self.guidance[-1].bias)
        widths = [width * m for m in mults]
        levels = len(widths)
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [width], width
        for i, w in enumerate(widths):
            stage = nn.ModuleList()
            for _ in range(blocks):
                stage.append(ResBlock(c, w, emb_dim))
                c = w
                skips.append(c)
            self.down.append(stage)
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, emb_dim)
        self.mid_attention = Attention(c) if attention else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            stage = nn.ModuleList()
            for _ in range(blocks + 1):
                stage.append(ResBlock(c + skips.pop(), w, emb_dim))
                c = w
            self.up.append(stage)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, channels, 3, padding=1)
        self.feature_dim = c + channels
        self.head = nn.Linear(self.feature_dim, num_classes)

    def embedding(self, t: torch.Tensor, y: torch.Tensor, guidance: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.config["width"])) + self.label(y)
        if self.guidance is not None:
            scale = torch.ones_like(t) if guidance is None else guidance.to(t)
            emb = emb + self.guidance(timestep_embedding(scale / 10.0, self.config["width"]))
        return emb

    def _encode(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)
        hs = [h]
        for i, stage in enumerate(self.down):
            for block in stage:
                h = block(h, emb)
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attention(self.mid1(h, emb)), emb)
        return h, hs

    def _decode(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                guidance: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(last hidden activation [N, width, H, W], velocity [N, C, H, W])."""
        emb = self.embedding(t, y, guidance)
        h, hs = self._encode(x, emb)
        for i, stage in enumerate(self.up):
            for block in stage:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        hidden = F.silu(self.out_norm(h))
        return hidden, self.out(hidden)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                 guidance: torch.Tensor | None = None) -> torch.Tensor:
        return self._decode(x, t, y, guidance)[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        hidden, velocity = self._decode(x, torch.zeros(n, device=x.device),
                                        torch.full((n,), self.num_classes, device=x.device))
        return torch.cat([hidden, velocity], dim=1).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_student("unet", inputs=("image",))
def unet(input_shape, num_classes, width: int = 16, mults: tuple = (1, 2, 4), blocks: int = 1, attention: bool = True,
         guidance_embedding: bool = False) -> UNet:
    """Class-conditional U-Net denoiser (rectified-flow velocity); the generation kind's teacher and student.

    width: channels at full resolution (8-128)
    mults: channels of each resolution as multiples of width; each further entry halves H and W (1-4 entries)
    blocks: residual blocks per resolution on the way down (one more on the way up); 1-3
    attention: self-attention at the lowest resolution
    guidance_embedding: also read the guidance scale (zero-initialised; the guidance method's adapters)
    """
    problems = int_at_least("width", width, 8) + int_at_least("blocks", blocks, 1)
    if not (isinstance(mults, (list, tuple)) and 1 <= len(mults) <= 4
            and all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in mults)):
        problems.append(f"the knob 'mults' must be a list of 1 to 4 ints >= 1, e.g. [1, 2, 4]. Got {mults!r}.")
    raise_problems("unet", problems)
    size = 2 ** (len(mults) - 1)
    if input_shape[1] % size or input_shape[2] % size:
        raise XDistillError(f"Student 'unet' with {len(mults)} resolutions needs H and W divisible by {size}. Got "
                            f"{tuple(input_shape[1:])}. Give 'mults' fewer entries or resize the images.")
    return UNet(tuple(input_shape), num_classes, width, tuple(mults), blocks, bool(attention), bool(guidance_embedding))
