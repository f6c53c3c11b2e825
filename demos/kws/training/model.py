"""DS-CNN keyword-spotting model (after ARM's "Hello Edge" DS-CNN-S), input [B, 1, 40 mel, 98 frames]."""

import torch
from torch import nn


def conv_bn(cin, cout, k, stride=1, groups=1):
    pad = tuple(x // 2 for x in k) if isinstance(k, tuple) else k // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class DSCNN(nn.Module):
    def __init__(self, n_classes=12, ch=64, blocks=4, dropout=0.2):
        super().__init__()
        layers = [conv_bn(1, ch, (4, 10), stride=2)]  # 4 mel bands x 100 ms, stride 2 -> [20, 49]
        for _ in range(blocks):
            layers += [conv_bn(ch, ch, 3, groups=ch), conv_bn(ch, ch, 1)]  # depthwise 3x3 + pointwise
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(ch, n_classes))

    def forward(self, x):  # x: [B, 1, 40, 98] log-mel from edge/runtime/audio/features.py
        return self.head(self.features(x))  # logits [B, n_classes]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    import time

    torch.set_num_threads(1)
    m = DSCNN()
    x = torch.randn(64, 1, 40, 98)
    opt = torch.optim.AdamW(m.parameters())
    for i in range(6):
        if i == 1:
            t = time.time()
        loss = m(x).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"{n_params(m)} params, train step (batch 64, 1 thread): {(time.time() - t) / 5 * 1000:.0f} ms")
