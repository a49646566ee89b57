"""PyTorch twins of numcnn's classic networks, written from stock ``torch.nn`` modules and
structured as torchvision's code (the same module names, so ``load_state_dict(strict=True)``
takes ``numcnn.models.torchvision_state_dict``): ResNet (basic and bottleneck blocks, the
CIFAR nets with option-A shortcuts), VGG, AlexNet (torchvision's and the paper's two-column
net), ZFNet and GoogLeNet with its auxiliary classifiers. Used by the parity tests
(``tests/models/test_zoo.py``) and the side-by-side benchmark (``classic_vs_torch.py``).
Dropout layers are there with p = 0 (the tests compare deterministic passes)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from numcnn.models.googlenet import INCEPTION


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride, down, option="B"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.option, self.stride, self.extra = option, stride, planes - cin
        self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                        nn.BatchNorm2d(planes)) if down and option == "B" \
            else None
        self.down = down

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            x = self.downsample(x)
        elif self.down:  # option A, as the common CIFAR implementations write it
            x = x[:, :, ::self.stride, ::self.stride]
            x = F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return F.relu(out + x)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                                        nn.BatchNorm2d(planes * 4)) if down else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(out + x)


class ResNet(nn.Module):
    def __init__(self, block, counts, cin, num_classes, cifar=False):
        super().__init__()
        width = 16 if cifar else 64
        self.cifar = cifar
        self.conv1 = nn.Conv2d(cin, width, 3 if cifar else 7, 1 if cifar else 2,
                               1 if cifar else 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        expansion = 4 if block is Bottleneck else 1
        channels = width
        planes_list = (16, 32, 64) if cifar else (64, 128, 256, 512)
        for s, (planes, n) in enumerate(zip(planes_list, counts), start=1):
            blocks = []
            for i in range(n):
                stride = 2 if s > 1 and i == 0 else 1
                down = i == 0 and (stride != 1 or channels != planes * expansion)
                if block is Bottleneck:
                    blocks.append(Bottleneck(channels, planes, stride, down))
                else:
                    blocks.append(BasicBlock(channels, planes, stride, down,
                                             "A" if cifar else "B"))
                channels = planes * expansion
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if not self.cifar:
            x = F.max_pool2d(x, 3, 2, 1)
        for s in range(1, 5 if not self.cifar else 4):
            x = getattr(self, f"layer{s}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def vgg_twin(cfg, bn, cin, num_classes, classifier=(4096, 4096), pool=(7, 7)):
    layers, c = [], cin
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(c, v, 3, padding=1))
        if bn:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        c = v

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(pool) if pool else nn.Identity()
            head, n = [], None
            for units in classifier:
                head += [nn.LazyLinear(units) if n is None else nn.Linear(n, units),
                         nn.ReLU(), nn.Dropout(0.0)]
                n = units
            head.append(nn.Linear(n, num_classes))
            self.classifier = nn.Sequential(*head)

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return VGG()


class AlexNet(nn.Module):  # torchvision's
    def __init__(self, cin, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(cin, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.0), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.0),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Caffe(nn.Module):
    """The paper AlexNet (two groups, LRN) and ZFNet (ceil-mode pools), Caffe names."""

    def __init__(self, zf, cin, num_classes):
        super().__init__()
        self.zf = zf
        if zf:
            self.conv1 = nn.Conv2d(cin, 96, 7, 2, 1)
            self.conv2 = nn.Conv2d(96, 256, 5, 2)
            self.conv4 = nn.Conv2d(384, 384, 3, padding=1)
            self.conv5 = nn.Conv2d(384, 256, 3, padding=1)
        else:
            self.conv1 = nn.Conv2d(cin, 96, 11, 4)
            self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
            self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
            self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.norm = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
        self.fc6, self.fc7 = nn.Linear(9216, 4096), nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)

    def forward(self, x):
        pool = (lambda t: F.max_pool2d(t, 3, 2, ceil_mode=True)) if self.zf else \
            (lambda t: F.max_pool2d(t, 3, 2))
        if self.zf:
            x = self.norm(pool(F.relu(self.conv1(x))))
            x = self.norm(pool(F.relu(self.conv2(x))))
        else:
            x = pool(self.norm(F.relu(self.conv1(x))))
            x = pool(self.norm(F.relu(self.conv2(x))))
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = pool(F.relu(self.conv5(x)))
        x = F.relu(self.fc6(torch.flatten(x, 1)))
        return self.fc8(F.relu(self.fc7(x)))


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pool):
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, 1), BasicConv2d(c3r, c3, 3, 1, 1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, 1), BasicConv2d(c5r, c5, 3, 1, 1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     BasicConv2d(cin, pool, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                          self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin, num_classes):
        super().__init__()
        self.conv = BasicConv2d(cin, 128, 1)
        self.fc1, self.fc2 = nn.Linear(2048, 1024), nn.Linear(1024, num_classes)

    def forward(self, x):
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(F.relu(self.fc1(x)))


class GoogLeNet(nn.Module):
    def __init__(self, cin, num_classes, aux):
        super().__init__()
        spec = INCEPTION
        self.conv1 = BasicConv2d(cin, 64, 7, 2, 3)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, 1, 1)
        c = 192
        for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
            s = spec[name]
            setattr(self, f"inception{name}", Inception(c, *s))
            c = s[0] + s[2] + s[4] + s[5]
        self.aux = aux
        if aux:
            self.aux1, self.aux2 = InceptionAux(512, num_classes), InceptionAux(528, num_classes)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        pool = lambda t, k=3: F.max_pool2d(t, k, 2, ceil_mode=True)  # noqa: E731
        x = pool(self.conv1(x))
        x = pool(self.conv3(self.conv2(x)))
        x = pool(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        a1 = self.aux1(x) if self.aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        a2 = self.aux2(x) if self.aux else None
        x = pool(self.inception4e(x), 2)
        x = self.inception5b(self.inception5a(x))
        out = self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return [out, a2, a1] if self.aux else out
