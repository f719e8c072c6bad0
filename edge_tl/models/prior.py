"""What the backbone's own ImageNet classifier says about the user's labels, kept in the bundle
as a second opinion for cameras the new head has never seen.

The new head learns the training camera's views; on other cameras it names cars bike or minibus
(issue 14: 0.30 and 0.29 class accuracy on two shared clips, 97 % on its own camera), while the
pretrained classifier still knows a car from the front, the rear and above. Labels are matched
by name to ImageNet classes through a traffic vocabulary (no training data involved); the prior
for a label is the share of the matched ImageNet probability that falls on its classes:

    log prior(label) = logsumexp_{k in label} z_k - logsumexp_{k in any label} z_k

(the softmax denominator over all 1000 classes cancels, so only the matched rows of the
ImageNet classifier are kept: ~30 rows of 1280 weights). The exported graph appends these
log-probabilities after the head's logits; the runtime fuses them when a stream drifts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "IMAGENET_VOCABULARY",
    "PRIOR_FLOOR",
    "match_labels",
    "PriorHead",
    "WithPrior",
    "build_prior",
    "prior_state",
    "prior_from_state",
    "imagenet_prior",
]

log = logging.getLogger(__name__)

# traffic words → ImageNet-1k classes (the first name of each class in timm's ImageNetInfo)
_BICYCLES = ("bicycle-built-for-two", "mountain bike", "tricycle", "unicycle")
_MOTORBIKES = ("moped", "motor scooter")
_CARS = (
    "sports car", "convertible", "cab", "limousine", "beach wagon", "racer", "jeep", "Model T",
    "minivan", "car wheel", "grille", "police van", "ambulance", "go-kart", "golfcart",
)  # fmt: skip
_BUSES = ("school bus", "trolleybus", "minibus")
_TRUCKS = ("tow truck", "garbage truck", "fire engine", "moving van", "trailer truck")
IMAGENET_VOCABULARY: dict[str, tuple[str, ...]] = {
    "bike": _BICYCLES + _MOTORBIKES,
    "bicycle": _BICYCLES,
    "cycle": _BICYCLES,
    "motorbike": _MOTORBIKES,
    "motorcycle": _MOTORBIKES,
    "scooter": _MOTORBIKES,
    "moped": ("moped",),
    "car": _CARS,
    "automobile": _CARS,
    "sedan": _CARS,
    "hatchback": _CARS,
    "taxi": ("cab",),
    "cab": ("cab",),
    "suv": ("jeep", "minivan"),
    "jeep": ("jeep",),
    "van": ("minivan", "moving van", "police van"),
    "minivan": ("minivan",),
    "bus": _BUSES,
    "coach": _BUSES,
    "minibus": ("minibus",),
    "trolleybus": ("trolleybus",),
    "pickup": ("pickup",),
    "truck": _TRUCKS,
    "lorry": _TRUCKS,
    "juggernaut": ("trailer truck",),
    "semi": ("trailer truck",),
    "articulated": ("trailer truck",),
    "trailer": ("trailer truck",),
    "tractor": ("tractor",),
    "tram": ("streetcar",),
    "streetcar": ("streetcar",),
    "ambulance": ("ambulance",),
    "firetruck": ("fire engine",),
    "fire": ("fire engine",),
    "tow": ("tow truck",),
    "garbage": ("garbage truck",),
}
# a label the prior cannot speak for still gets this share, so fusing never rules it out
PRIOR_FLOOR = 0.05


def match_labels(labels: Sequence[str], class_names: Sequence[str]) -> dict[str, list[int]]:
    """ImageNet class indices per label, by the label's words (`fire_truck`, `Cars`); a class
    claimed by several labels goes to the most specific one (fewest classes), as `trailer truck`
    goes to `juggernaut` rather than `truck`. Labels with no known word are left out."""
    first_names = {name.split(",")[0].strip(): i for i, name in enumerate(class_names)}
    wanted: dict[str, set[int]] = {}
    for label in labels:
        words = [w for w in re.split(r"[^a-z]+", label.lower()) if w]
        known = [set(IMAGENET_VOCABULARY.get(w, _plural(w))) for w in words]
        known = [k for k in known if k]
        # several known words narrow each other down (`fire_truck`: fire engine), unless
        # they have nothing in common (`car_or_van`: both)
        names = set.intersection(*known) or set.union(*known) if known else set()
        indices = {first_names[n] for n in names if n in first_names}
        if indices:
            wanted[label] = indices
    matched: dict[str, list[int]] = {label: [] for label in wanted}
    for label, indices in wanted.items():
        for index in sorted(indices):
            claimants = [other for other, ids in wanted.items() if index in ids]
            if min(claimants, key=lambda other: (len(wanted[other]), other)) == label:
                matched[label].append(index)
    return {label: ids for label, ids in matched.items() if ids}


def _plural(word: str) -> tuple[str, ...]:
    """The vocabulary entry of a plural word (`cars`, `buses`), else nothing."""
    for singular in (word[:-2], word[:-1]):
        if word.endswith("s") and singular in IMAGENET_VOCABULARY:
            return IMAGENET_VOCABULARY[singular]
    return ()


class PriorHead(torch.nn.Module):
    """Pooled features → log prior per label (see the module docstring)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, groups: torch.Tensor) -> None:
        super().__init__()
        self.imagenet = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.imagenet.weight.copy_(weight)
            self.imagenet.bias.copy_(bias)
        self.register_buffer("groups", groups)  # labels x rows: 0 where a row is the label's

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = self.imagenet(features)  # N x rows
        per_label = torch.logsumexp(z.unsqueeze(1) + self.groups, dim=2)  # N x labels
        share = (per_label - torch.logsumexp(z, dim=1, keepdim=True)).exp()  # 0 where unmatched
        return torch.log(share * (1 - PRIOR_FLOOR) + PRIOR_FLOOR / per_label.shape[1])


class WithPrior(torch.nn.Module):
    """A timm classifier whose output is its logits followed by the prior's log-probabilities
    (N x 2·labels): what the exported graphs compute, one backbone pass for both."""

    def __init__(self, model: torch.nn.Module, prior: PriorHead) -> None:
        super().__init__()
        self.model, self.prior = model, prior

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return torch.cat([self.model.get_classifier()(features), self.prior(features)], dim=1)


def build_prior(
    labels: Sequence[str],
    weight: torch.Tensor,
    bias: torch.Tensor,
    class_names: Sequence[str],
) -> tuple[PriorHead, dict[str, list[str]]] | None:
    """The prior head from the pretrained classifier's `weight` (1000 x D) and `bias`, and the
    ImageNet class names per label; None when fewer than two labels match (a prior that cannot
    tell labels apart adds nothing)."""
    matched = match_labels(labels, class_names)
    if len(matched) < 2:
        log.info("ImageNet prior: only %s match ImageNet classes; none kept", list(matched))
        return None
    rows = sorted({i for ids in matched.values() for i in ids})
    groups = torch.full((len(labels), len(rows)), float("-inf"))
    for li, label in enumerate(labels):
        for i in matched.get(label, ()):
            groups[li, rows.index(i)] = 0.0
    names = {label: [class_names[i].split(",")[0] for i in ids] for label, ids in matched.items()}
    log.info("ImageNet prior for %s", {k: len(v) for k, v in names.items()})
    return PriorHead(weight[rows].clone(), bias[rows].clone(), groups), names


def prior_state(prior: PriorHead) -> dict[str, Any]:
    """What model.pt keeps of the prior (rebuilt by `prior_from_state`)."""
    return {k: v.detach().cpu().contiguous() for k, v in prior.state_dict().items()}


def prior_from_state(state: dict[str, Any]) -> PriorHead:
    weight, bias, groups = state["imagenet.weight"], state["imagenet.bias"], state["groups"]
    return PriorHead(weight, bias, groups)


def imagenet_prior(
    spec: Any, labels: Sequence[str]
) -> tuple[PriorHead, dict[str, list[str]]] | None:
    """The prior from a registered backbone's pretrained ImageNet-1k classifier; None when its
    weights have no 1000-class classifier or fewer than two labels match."""
    from timm.data import ImageNetInfo

    state = spec.load_pretrained()
    weight, bias = state.get(f"{spec.classifier}.weight"), state.get(f"{spec.classifier}.bias")
    if weight is None or bias is None or weight.shape[0] != 1000:
        log.info("ImageNet prior: %s has no ImageNet-1k classifier; none kept", spec.name)
        return None
    info = ImageNetInfo()
    return build_prior(labels, weight, bias, [info.index_to_description(i) for i in range(1000)])
