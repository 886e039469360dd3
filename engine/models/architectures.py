"""The bundled target architectures, one per family the papers attack.

* ``C3D``: a small 3D CNN (C3D / I3D family); input ``B x C x T x H x W``.
* ``CNNLSTM``: a per-frame 2D CNN encoder feeding an LSTM; input ``B x T x C x H x W``.
  Each step sees its frame and the difference to the previous frame: from
  pooled appearance features alone the LSTM learnt camera motion too slowly
  (58% test accuracy after 16 epochs).
* ``TSN``: a per-frame 2D CNN with temporal average pooling (the 2D-CNN family of
  the papers' Inception-v3). A 2D CNN that pools over time cannot see order, so
  each step sees its frame and the difference to the next frame (the "RGB
  difference" input of temporal segment networks); input ``B x T x C x H x W``.

All are small on purpose: they train on 2 CPU cores in minutes.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv3d(cin: int, cout: int, stride=1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout),
                         nn.ReLU(inplace=True))


def _conv2d(cin: int, cout: int, stride=1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class C3D(nn.Module):
    layout = "BCTHW"

    def __init__(self, num_classes: int, channels: int = 3, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            _conv3d(channels, width, stride=(1, 2, 2)),
            _conv3d(width, 2 * width),
            nn.MaxPool3d(2),
            _conv3d(2 * width, 4 * width),
            nn.MaxPool3d(2),
            _conv3d(4 * width, 4 * width),
            nn.AdaptiveAvgPool3d(1),
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class FrameEncoder(nn.Module):
    """2D CNN shared by every frame; keeps a coarse spatial grid so that where
    things are (and so how they move) survives the pooling."""

    def __init__(self, channels: int, width: int, grid: int, out_features: int):
        super().__init__()
        self.net = nn.Sequential(
            _conv2d(channels, width, stride=2),
            _conv2d(width, 2 * width, stride=2),
            _conv2d(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(),
            nn.Linear(4 * width * grid * grid, out_features),
            nn.ReLU(inplace=True),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)


class CNNLSTM(nn.Module):
    layout = "BTCHW"

    def __init__(self, num_classes: int, channels: int = 3, width: int = 16, hidden: int = 96):
        super().__init__()
        self.encoder = FrameEncoder(2 * channels, width, grid=4, out_features=hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape[:2]
        previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)
        steps_in = torch.cat([x, x - previous], dim=2)  # frame and difference to the previous one
        features = self.encoder(steps_in.flatten(0, 1)).view(batch, steps, -1)
        _, (last_hidden, _) = self.lstm(features)
        return self.classifier(last_hidden[-1])


class TSN(nn.Module):
    layout = "BTCHW"

    def __init__(self, num_classes: int, channels: int = 3, width: int = 16):
        super().__init__()
        self.encoder = FrameEncoder(2 * channels, width, grid=2, out_features=4 * width)
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape[:2]
        steps_in = torch.cat([x[:, :-1], x[:, 1:] - x[:, :-1]], dim=2)  # frame and difference to the next
        per_step = self.classifier(self.encoder(steps_in.flatten(0, 1))).view(batch, steps - 1, -1)
        return per_step.mean(dim=1)


ARCHITECTURES = {"c3d": C3D, "cnn_lstm": CNNLSTM, "tsn": TSN}
