"""An R3D-18-shaped 3D ResNet (Tran et al. 2018: 3D basic blocks, [2, 2, 2, 2],
64-512 channels) for benchmarks at a realistic size (16 x 112 x 112): on a GPU
the tiny bundled models measure launch overhead, not the engine. Random
weights are enough to time an attack."""

from __future__ import annotations

import torch
from torch import nn

from sava.models import ModelInfo, VideoModel


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.skip = nn.Sequential()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


class R3D18(nn.Module):
    def __init__(self, num_classes: int = 101):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(64),
                                  nn.ReLU(inplace=True))
        widths, layers, cin = (64, 128, 256, 512), [], 64
        for i, width in enumerate(widths):
            layers += [Block(cin, width, 1 if i == 0 else 2), Block(width, width, 1)]
            cin = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x):  # B x C x T x H x W
        return self.head(self.layers(self.stem(x)).mean(dim=(2, 3, 4)))


def r3d18_model(device: str = "cpu", frames: int = 16, size: int = 112, classes: int = 101) -> VideoModel:
    torch.manual_seed(0)
    module = R3D18(classes).eval()
    info = ModelInfo(name="r3d18-random", layout="BCTHW", mean=(0.43, 0.4, 0.37), std=(0.23, 0.22, 0.22),
                     classes=[str(i) for i in range(classes)], clip_shape=(frames, 3, size, size))
    return VideoModel(module, info, device=device)
