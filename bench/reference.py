"""The hand-written loops tl_core is measured against: what a user would write with timm/PyTorch.

Decoding is plain PIL (open, convert to RGB, full-resolution decode, every time it is needed);
the geometric and colour transforms are torchvision's, with the same numbers tl_core uses.
"""
from __future__ import annotations

import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

from tl_core.data.transforms import Preprocess


def _resize(pp: Preprocess):
    return T.Resize(pp.scale_size, interpolation=T.InterpolationMode.BICUBIC)


def eval_tf(pp: Preprocess):
    return T.Compose([_resize(pp), T.CenterCrop(pp.input_size), T.ToTensor(), T.Normalize(pp.mean, pp.std)])


def train_tf(pp: Preprocess):
    # tl_core's "light" augmentation, after the same resize of the shorter side
    return T.Compose([_resize(pp), T.RandomResizedCrop(pp.input_size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
                      T.ColorJitter(0.1, 0.1, 0.1), T.ToTensor(), T.Normalize(pp.mean, pp.std)])


class Files(torch.utils.data.Dataset):
    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        it = self.items[i]
        with Image.open(it.path) as img:
            return self.transform(img.convert("RGB")), it.label


def embed(model: nn.Module, items, pp: Preprocess, batch_size: int) -> torch.Tensor:
    """One plain forward pass of the backbone over `items`: pooled features, batch by batch."""
    loader = torch.utils.data.DataLoader(Files(items, eval_tf(pp)), batch_size=batch_size, num_workers=0)
    model.eval()
    out = []
    with torch.inference_mode():
        for x, _ in loader:
            out.append(model.forward_head(model.forward_features(x), pre_logits=True))
    return torch.cat(out)


class PlainFineTune:
    """timm model + AdamW + cross-entropy; one epoch = train pass + validation pass."""

    def __init__(self, model: nn.Module, ds, pp: Preprocess, batch_size: int, lr: float, weight_decay: float,
                 seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        drop_last = len(ds.train) % batch_size == 1
        self.model = model
        self.train_loader = torch.utils.data.DataLoader(Files(ds.train, train_tf(pp)), batch_size=batch_size,
                                                        shuffle=True, drop_last=drop_last, generator=gen)
        self.val_loader = torch.utils.data.DataLoader(Files(ds.val, eval_tf(pp)), batch_size=batch_size)
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.loss_fn = nn.CrossEntropyLoss()

    def train_epoch(self) -> tuple[int, float]:
        """-> (images seen, seconds) for the training pass."""
        import time

        self.model.train()
        t, seen = time.perf_counter(), 0
        for x, y in self.train_loader:
            loss = self.loss_fn(self.model(x), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            seen += len(y)
        return seen, time.perf_counter() - t

    def validate(self) -> float:
        self.model.eval()
        correct = n = 0
        with torch.inference_mode():
            for x, y in self.val_loader:
                correct += (self.model(x).argmax(1) == y).sum().item()
                n += len(y)
        return correct / max(1, n)
