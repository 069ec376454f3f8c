"""Occluders: the true class's probability for copies of images with a square patch painted over them.

`FullForward` runs every occluded copy through the model. `Incremental`, for a SimpleCNN, recomputes only the
activations a patch can change: a k x k patch changes a k x k square of the input; through a 3x3 convolution (padding
1) and a 2x2 max pool that square becomes a small window of the pooled map, and through the second block a window of
the 7x7 map; the first linear layer then moves by its weights over that window times the window's change. A copy
costs a crop through each conv block and a small matrix product instead of a whole forward pass (about a third of the
arithmetic for a 5x5 patch) and gives the same probabilities up to float rounding. Both need eval mode;
`Incremental` keeps every image's clean activations (~150 KB an image) and assumes square images, as SimpleCNN does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.models import SimpleCNN


@dataclass(frozen=True)
class ConvStage:
    """One conv block: a 3x3 convolution (stride 1, padding 1), then per-pixel modules and one 2x2 max pool."""

    conv: nn.Conv2d
    rest: nn.Sequential

    def changed_rows(self, first: Tensor, last: Tensor, side: int) -> tuple[Tensor, Tensor]:
        """Input rows first..last changed (per copy) -> the rows of this block's pooled output that can change."""
        return (first - 1).clamp(min=0) // 2, ((last + 1).clamp(max=side - 1) // 2).clamp(max=side // 2 - 1)

    def windows(self, crops: Tensor) -> Tensor:
        """The block's output over the middle of each crop of its zero-padded input: an n x n window from 2n+2 rows
        and columns."""
        return self.rest(F.conv2d(crops, self.conv.weight, self.conv.bias))


def split(classifier: nn.Module) -> tuple[nn.Module, SimpleCNN] | None:
    """(per-pixel input transform, SimpleCNN) when `classifier` is a SimpleCNN, bare or after a Normalize."""
    if isinstance(classifier, SimpleCNN):
        return nn.Identity(), classifier
    parts = list(classifier.children()) if isinstance(classifier, nn.Sequential) else []
    if len(parts) != 2 or not isinstance(parts[1], SimpleCNN):
        return None
    from torchvision.transforms import Normalize  # here, as in loading.pixel_classifier: a second of start-up

    if isinstance(parts[0], Normalize):
        return parts[0], parts[1]
    return None


def stages(model: SimpleCNN) -> list[ConvStage]:
    """The conv blocks, each cut at its convolution (its batch norm, pool and ReLU act on one window at a time)."""
    blocks: list[list[nn.Module]] = []
    for module in model.conv_block:
        if isinstance(module, nn.Conv2d):
            blocks.append([module])
        else:
            blocks[-1].append(module)
    return [ConvStage(block[0], nn.Sequential(*block[1:])) for block in blocks]


def crop(x: Tensor, which: Tensor, top: Tensor, left: Tensor, size: int, stride: int = 1) -> Tensor:
    """[B, C, size, size]: for each b, the square of x[which[b]] from row stride * top[b], column stride * left[b]."""
    return x.unfold(2, size, stride).unfold(3, size, stride)[which, :, top, left]


def paste(out: Tensor, window: Tensor, top: Tensor, left: Tensor) -> Tensor:
    """Write window[b] [C, n, n] into out[b] [C, H, W] at row top[b], column left[b], for each b; returns `out`."""
    offsets = torch.arange(window.shape[-1], device=out.device)
    rows, cols = (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]
    out[torch.arange(len(out), device=out.device)[:, None, None], :, rows, cols] = window.permute(0, 2, 3, 1)
    return out


def square_windows(rows: tuple[Tensor, Tensor], cols: tuple[Tensor, Tensor], side: int) -> tuple[Tensor, Tensor, int]:
    """Each copy's changed (first, last) rows and columns -> one square window size for all copies (the largest
    span) and each copy's window top and left, kept inside the side x side map."""
    size = int(torch.maximum(rows[1] - rows[0], cols[1] - cols[0]).max()) + 1
    return rows[0].clamp(max=side - size), cols[0].clamp(max=side - size), size


def patch_masks(top: Tensor, left: Tensor, size: int, height: int, width: int) -> Tensor:
    """[B, 1, H, W] booleans, True where the size x size patch at row top[b], column left[b] covers the image."""
    rows, cols = torch.arange(height, device=top.device), torch.arange(width, device=top.device)
    rows_in = (rows >= top[:, None]) & (rows < top[:, None] + size)
    cols_in = (cols >= left[:, None]) & (cols < left[:, None] + size)
    return rows_in[:, None, :, None] & cols_in[:, None, None, :]


class FullForward:
    """Any classifier: every occluded copy through the whole model."""

    def __init__(self, classifier: nn.Module, images: Tensor, labels: Tensor, size: int, fill: float):
        self.classifier, self.images, self.labels, self.size = classifier, images, labels, size
        self.fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device)

    def occluded(self, which: Tensor, top: Tensor, left: Tensor) -> Tensor:
        """Copies of images[which] with the patch at (top, left)."""
        masks = patch_masks(top, left, self.size, *self.images.shape[-2:])
        return torch.where(masks, self.fill, self.images[which])

    @torch.no_grad()
    def __call__(self, which: Tensor, top: Tensor, left: Tensor) -> Tensor:
        """p(label) of each copy of images[which] with the patch at (top, left)."""
        logits = self.classifier(self.occluded(which, top, left))
        return logits.softmax(dim=1).gather(1, self.labels[which][:, None])[:, 0]


class Incremental(FullForward):
    """A SimpleCNN (after an optional per-pixel transform): only the windows a patch changes are recomputed."""

    def __init__(self, classifier: nn.Module, images: Tensor, labels: Tensor, size: int, fill: float):
        super().__init__(classifier, images, labels, size, fill)
        parts = split(classifier)
        if parts is None:
            raise TypeError(f"{type(classifier).__name__} is not a SimpleCNN")
        self.transform, model = parts
        self.stages = stages(model)
        self.fc1, self.fc_rest = model.fc_block[0], model.fc_block[1:]
        with torch.no_grad():  # the clean activations every copy starts from
            first, second = self.stages
            self.clean1 = first.rest(first.conv(self.transform(images)))
            self.clean2 = second.rest(second.conv(self.clean1))
            self.hidden = self.fc1(self.clean2.flatten(1))
            self.padded1 = F.pad(self.clean1, (1, 1, 1, 1))
            # the first linear layer's weights as [row, col, channel, hidden]: a window's rows are contiguous slices
            side = self.clean2.shape[-1]
            weight = self.fc1.weight.view(len(self.fc1.weight), -1, side, side)
            self.weight_by_pixel = weight.permute(2, 3, 1, 0).contiguous()

    @torch.no_grad()
    def __call__(self, which: Tensor, top: Tensor, left: Tensor) -> Tensor:
        first, second = self.stages
        copies = torch.arange(len(which), device=which.device)
        side = self.images.shape[-1]
        r1, c1, n1 = square_windows(
            first.changed_rows(top, top + self.size - 1, side),
            first.changed_rows(left, left + self.size - 1, side),
            side // 2,
        )
        occluded = F.pad(self.transform(self.occluded(which, top, left)), (1, 1, 1, 1))
        window1 = first.windows(crop(occluded, copies, r1, c1, 2 * n1 + 2, stride=2))

        side //= 2
        r2, c2, n2 = square_windows(
            second.changed_rows(r1, r1 + n1 - 1, side), second.changed_rows(c1, c1 + n1 - 1, side), side // 2
        )
        # the crop the second block needs always contains the first block's whole window
        # (a fresh copy per occluded copy)
        crops = paste(
            crop(self.padded1, which, r2, c2, 2 * n2 + 2, stride=2), window1, r1 + 1 - 2 * r2, c1 + 1 - 2 * c2
        )
        # [B, rows, cols * channels]: each window row's change, channels innermost like the row-major weights below
        change = (second.windows(crops) - crop(self.clean2, which, r2, c2, n2)).permute(0, 2, 3, 1).flatten(2)

        hidden = self.hidden[which]
        key = r2 * (side // 2) + c2
        for start in key.unique().tolist():  # copies whose window sits at the same place share a weight slice
            members = torch.nonzero(key == start)[:, 0]
            row, col = divmod(start, side // 2)
            weight = self.weight_by_pixel[row : row + n2, col : col + n2].flatten(1, 2)  # [rows, cols * C, hidden]
            hidden[members] += torch.bmm(change[members].transpose(0, 1), weight).sum(dim=0)
        return self.fc_rest(hidden).softmax(dim=1).gather(1, self.labels[which][:, None])[:, 0]


def occluder(classifier: nn.Module, images: Tensor, labels: Tensor, size: int, fill: float) -> FullForward:
    """The fastest occluder that computes exactly this classifier's probabilities."""
    kind = Incremental if split(classifier) is not None else FullForward
    return kind(classifier, images, labels, size, fill)
