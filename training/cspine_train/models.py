"""Network definitions of the four stages (Kang et al. 2026 hierarchy).

All convolutional models take a single-channel display image in [0, 1]
(shape [N, 1, S, S]) and emit landmark heatmaps at a quarter (global) or a
half (specialists) of the input resolution. Models are deliberately small so
the whole recipe trains on a 2-core CPU in well under an hour.
"""
import torch
from torch import nn
import torch.nn.functional as F


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)), inplace=True)
        y = self.b2(self.c2(y))
        return F.relu(x + y, inplace=True)


class HeatmapNet(nn.Module):
    """A small U-Net-like encoder/decoder.

    widths: channels at strides 2, 4, 8, 16, 32. The output heatmaps are at
    stride `out_stride` (4 for the global model, 2 for the specialists).
    With `obscuration_classes` > 0 a classification head on the deepest
    features is added (C7 specialist: none/partial/complete).
    """

    def __init__(self, n_landmarks, widths=(16, 24, 48, 64, 96), out_stride=4, obscuration_classes=0):
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.widths = tuple(widths)
        self.out_stride = out_stride
        self.stem = nn.Sequential(conv_bn(1, w1, 2), conv_bn(w1, w1))  # /2
        self.d2 = nn.Sequential(conv_bn(w1, w2, 2), ResBlock(w2))  # /4
        self.d3 = nn.Sequential(conv_bn(w2, w3, 2), ResBlock(w3))  # /8
        self.d4 = nn.Sequential(conv_bn(w3, w4, 2), ResBlock(w4))  # /16
        self.d5 = nn.Sequential(conv_bn(w4, w5, 2), ResBlock(w5), ResBlock(w5))  # /32
        self.u4 = conv_bn(w5 + w4, w4)
        self.u3 = conv_bn(w4 + w3, w3)
        self.u2 = conv_bn(w3 + w2, w2)
        last = w2
        if out_stride == 2:
            self.u1 = conv_bn(w2 + w1, w1)
            last = w1
        self.head = nn.Conv2d(last, n_landmarks, 1)
        self.cls = None
        if obscuration_classes:
            self.cls = nn.Sequential(nn.Linear(w5 + w4, 64), nn.ReLU(inplace=True), nn.Linear(64, obscuration_classes))

    def forward(self, x):
        x1 = self.stem(x)
        x2 = self.d2(x1)
        x3 = self.d3(x2)
        x4 = self.d4(x3)
        x5 = self.d5(x4)
        y = self.u4(torch.cat([F.interpolate(x5, scale_factor=2.0, mode="nearest"), x4], 1))
        y = self.u3(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), x3], 1))
        y = self.u2(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), x2], 1))
        if self.out_stride == 2:
            y = self.u1(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), x1], 1))
        hm = self.head(y)
        if self.cls is None:
            return hm
        feat = torch.cat([x5.mean(dim=(2, 3)), x4.amax(dim=(2, 3))], 1)
        return hm, self.cls(feat)


class C7Locator(nn.Module):
    """Stage 2: MLP from the C2-C6 landmarks (x, y, present) to the C7 region.

    Input [N, 19*3]: per landmark x and y in letterbox-normalised units
    (0..1 across the letterboxed square) and a presence flag (0 when the
    stage-1 confidence is below the manifest threshold; x = y = 0 then).
    Output [N, 4]: C7 centre x, y and size w, h in the same units.
    """

    def __init__(self, n_in=19, hidden=128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in * 3, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 4),
        )

    def forward(self, x):
        return self.net(x)
