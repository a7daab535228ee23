"""Architectures by name (params.yaml base.arch, aux.arch): auxcut's own ConvNet, the seeds' nets, and every
classification model of torchvision.models, built from scratch or from a weights file on disk, never downloaded.

Every net built here has the shape the rest of the package reads:
- `view`: what it sees of the image (auxcut.nets.models.View);
- `features`: view output -> the pooled embedding, the input of the classifier;
- `classifier`: embedding -> logits, the one part a weights file does not provide (it is sized to the classes);
- `arch`: what `build` needs to make the net again from a checkpoint. ConvNet's arch has no "name" (checkpoints
  from before names existed, and today's default, stay byte for byte what they were); every other net's names it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from auxcut import AuxcutError
from auxcut.nets.models import Backbone, ConvNet, View, ViewKind

CONVNET = "convnet"
PMNIST_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
# the missing-feature paper's MNIST net: `pmnist_net` is its ReLU form, `pmnist_net_<activation>` the others
PMNIST_NAMES = {"pmnist_net": "relu", **{f"pmnist_net_{a}": a for a in PMNIST_ACTIVATIONS if a != "relu"}}
# small_input auto: torchvision nets get the small-input stem for images of at most this many pixels a side. Their
# ImageNet stem divides the side by 4 before the first block, which leaves 7x7 of a 28x28 digit and 2x2 at the end.
SMALL_INPUT_MAX_SIDE = 64
# base.weights' "none": a shipped one-line text file (not empty: DVC warns about an empty dep on every run), so that
# dvc.yaml can always declare the dep; recognised by its path, never read
NO_WEIGHTS = "data/no_weights"
SmallInput = Literal["auto"] | bool


def torchvision_names() -> list[str]:
    """The classification models of torchvision.models, from torchvision's own registry (imported only when asked:
    the default convnet never loads torchvision)."""
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def names() -> list[str]:
    return [CONVNET, *PMNIST_NAMES, *torchvision_names()]


def check_name(name: str) -> str:
    """`name` if it names an arch, else a ValueError listing a few that do (params.py turns it into one line)."""
    if name == CONVNET or name in PMNIST_NAMES or name in torchvision_names():
        return name
    some = [CONVNET, "pmnist_net", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0", "alexnet",
            "vgg11_bn"]
    raise ValueError(f"unknown arch {name!r}: expected convnet, pmnist_net[_relu6|_sigmoid|_tanh] or a torchvision "
                     f"classification model ({len(names())} in all), e.g. {', '.join(some)}")


def uses_small_input(name: str, in_shape: tuple[int, int, int], small_input: SmallInput) -> bool:
    """Whether a torchvision net gets the small-input stem: as asked, or under `auto` for images of at most
    SMALL_INPUT_MAX_SIDE pixels a side. auxcut's own nets are sized to their input and have no such option."""
    if name == CONVNET or name in PMNIST_NAMES:
        return False
    if small_input == "auto":
        return min(in_shape[1:]) <= SMALL_INPUT_MAX_SIDE
    return bool(small_input)


class PmnistNet(Backbone):
    """The missing-feature paper's MNIST net: two 5x5 conv layers of 10 and 20 channels, each followed by 2x2 max
    pooling and the activation, the last conv map flattened (320 units at 28x28), fc to 50 units, fc to the classes."""

    def __init__(self, in_shape: tuple[int, int, int], n_outputs: int, activation: str = "relu",
                 view: ViewKind = "full") -> None:
        super().__init__()
        self.view = View(view)
        channels, height, width = self.view.out_shape(tuple(in_shape))
        act = PMNIST_ACTIVATIONS[activation]
        # each side after conv 5, pool 2, conv 5, pool 2 (under 1: the forward check in `make` refuses the size)
        side = [((s - 4) // 2 - 4) // 2 for s in (height, width)]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 10, 5), nn.MaxPool2d(2), act(), nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), act(),
            nn.Flatten(), nn.Linear(20 * max(side[0], 1) * max(side[1], 1), 50), act())
        self.classifier = nn.Linear(50, n_outputs)
        self.arch = {"name": next(n for n, a in PMNIST_NAMES.items() if a == activation), "in_shape": list(in_shape),
                     "n_outputs": n_outputs, "view": view}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.view(x)))


def last_map(net: nn.Module) -> tuple[nn.Sequential, str]:
    """The layers from the view's output to the net's last conv map (after its last pooling and activation, before it
    is flattened or pooled globally: pmnist_net's 20 x 4 x 4 at 28 px, convnet's last block), and the name of the
    activation the map comes out of (relu, relu6, sigmoid, tanh). The layers are the net's own, not copies."""
    name = net.arch.get("name", CONVNET)
    check_last_map(name)
    layers = list(net.features)
    end = next(i for i, layer in enumerate(layers) if isinstance(layer, (nn.Flatten, nn.AdaptiveAvgPool2d)))
    return net.features[:end], PMNIST_NAMES.get(name, "relu")


def check_last_map(name: str) -> None:
    """convnet's and pmnist_net's last conv map can be read (`last_map`); a torchvision net's ends inside the model's
    own forward (its global pooling), so it is refused in one line, when params are read."""
    if name != CONVNET and name not in PMNIST_NAMES:
        raise AuxcutError(f"missing.map spatial reads the last conv map of convnet or pmnist_net[_relu6|_sigmoid|"
                          f"_tanh], and base.arch {name} has none auxcut can read (a torchvision net pools it inside "
                          f"its own forward): set missing.map pooled or one of those archs")


class ThreeChannels(nn.Module):
    """A one-channel image (digits, MNIST, the gray view) repeated into the three channels torchvision nets take: the
    same as summing the first conv's weights over its input channels, so RGB weights files load as they are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _head_path(arch: str, net: nn.Module, n_outputs: int) -> str:
    """The name of the net's classification layer: the last linear layer with the class count as its outputs."""
    found = [name for name, m in net.named_modules() if isinstance(m, nn.Linear) and m.out_features == n_outputs]
    if not found:
        raise AuxcutError(f"{arch}: its classifier is a conv layer, and auxcut replaces a linear one (the classifier "
                          f"a weights file does not give): pick another arch")
    return found[-1]


def _small_stem(net: nn.Module) -> None:
    """The small-input stem: the first conv becomes 3x3 stride 1 (same channels), the first max-pool goes, so a
    28-64 px image keeps its resolution into the first block (a ResNet's CIFAR stem; the same rule for every family)."""
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    name, first = convs[0]
    net.set_submodule(name, nn.Conv2d(first.in_channels, first.out_channels, 3, stride=1, padding=1,
                                      bias=first.bias is not None))
    pools = [n for n, m in net.named_modules() if isinstance(m, nn.MaxPool2d)]
    if pools:
        net.set_submodule(pools[0], nn.Identity())


class TorchvisionNet(Backbone):
    """A torchvision classification model split at its classification layer: `features` is the model with that
    layer taken out (images -> embedding), `classifier` the layer itself, sized to the classes."""

    def __init__(self, name: str, in_shape: tuple[int, int, int], n_outputs: int, small_input: bool,
                 view: ViewKind = "full") -> None:
        super().__init__()
        import torchvision.models

        self.view = View(view)
        channels = self.view.out_shape(tuple(in_shape))[0]
        if channels not in (1, 3):
            raise AuxcutError(f"{name}: takes 1- or 3-channel images, got {channels} channels")
        # googlenet and inception_v3 would add training-only side classifiers and warn about their init otherwise
        extra = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
        net = torchvision.models.get_model(name, weights=None, num_classes=n_outputs, **extra)
        self.head = _head_path(name, net, n_outputs)  # where torchvision's weights files keep the classifier
        self.classifier = net.get_submodule(self.head)
        net.set_submodule(self.head, nn.Identity())
        if small_input:
            _small_stem(net)
        self.features = nn.Sequential(OrderedDict(channels=ThreeChannels(), net=net))
        self.arch = {"name": name, "in_shape": list(in_shape), "n_outputs": n_outputs, "view": view,
                     "small_input": small_input}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.view(x)))


def make(name: str, in_shape: tuple[int, int, int], n_outputs: int, *, width: int, view: ViewKind = "full",
         small_input: SmallInput = "auto", param: str = "base.arch") -> nn.Module:
    """A fresh net of the named arch (width is ConvNet's alone), or an AuxcutError naming `param` when the arch does
    not exist or cannot take images of this shape (tried with one forward pass, before any training)."""
    try:
        check_name(name)
    except ValueError as exc:
        raise AuxcutError(f"params.yaml: {param}: {exc}") from None
    in_shape = tuple(int(s) for s in in_shape)
    if name == CONVNET:
        model: nn.Module = ConvNet(in_shape, n_outputs, width, view)
    elif name in PMNIST_NAMES:
        model = PmnistNet(in_shape, n_outputs, PMNIST_NAMES[name], view)
    else:
        model = TorchvisionNet(name, in_shape, n_outputs, uses_small_input(name, in_shape, small_input), view)
    _check_takes(model, in_shape, param)
    return model


def check_image_size(name: str, side: int, view: ViewKind, small_input: SmallInput, param: str) -> None:
    """`make`'s check that the arch takes side x side images, made when params are read (auxcut.pipeline.params), so
    that it stops the first stage rather than the one that trains the net. On the meta device: no weights are made or
    run. Three channels stand for any number, as the channels do not change the sizes a net can take."""
    try:
        with torch.device("meta"):
            make(name, (3, side, side), 2, width=1, view=view, small_input=small_input, param=param)
    except AuxcutError as exc:  # load_params names the file itself
        raise AuxcutError(str(exc).removeprefix("params.yaml: ")) from None


def _check_takes(model: nn.Module, in_shape: tuple[int, ...], param: str) -> None:
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *in_shape))
    except (RuntimeError, ValueError, AssertionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        small = model.arch.get("small_input")
        hint = "" if small is None else f" (small_input {str(small).lower()})"
        raise AuxcutError(f"params.yaml: {param} {model.arch.get('name', CONVNET)}{hint} cannot take "
                          f"{in_shape[1]}x{in_shape[2]} images ({reason}); change data.image_size or the arch"
                          ) from None
    finally:
        model.train(training)


def build(arch: dict[str, Any]) -> nn.Module:
    """The empty net of a checkpoint's arch (training.load_checkpoint's default builder)."""
    name = arch.get("name", CONVNET)
    in_shape, n_outputs, view = tuple(arch["in_shape"]), int(arch["n_outputs"]), arch.get("view", "full")
    if name == CONVNET:  # checkpoints written before views existed have no "view": they saw the full image
        return ConvNet(in_shape, n_outputs, int(arch["width"]), view)
    if name in PMNIST_NAMES:
        return PmnistNet(in_shape, n_outputs, PMNIST_NAMES[name], view)
    return TorchvisionNet(name, in_shape, n_outputs, bool(arch["small_input"]), view)


def like(net: nn.Module, n_outputs: int) -> nn.Module:
    """A fresh net of `net`'s arch (and view, and small-input stem) with another number of outputs."""
    return build({**net.arch, "n_outputs": n_outputs})


def replace_classifier(net: nn.Module, n_outputs: int) -> None:
    """Give `net` a fresh classifier of `n_outputs` (the last linear layer; ConvNet's sits after its dropout)."""
    if isinstance(net.classifier, nn.Sequential):
        net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, n_outputs)
    else:
        net.classifier = nn.Linear(net.classifier.in_features, n_outputs)
    net.arch = {**net.arch, "n_outputs": n_outputs}


def _looks_like_weights_name(value: str) -> bool:
    """`ResNet18_Weights.IMAGENET1K_V1`, `IMAGENET1K_V1`, `DEFAULT`: what torchvision would download."""
    return "/" not in value and "\\" not in value and Path(value).suffix.lower() not in (".pt", ".pth", ".bin", ".ckpt")


def check_weights_file(weights: str, param: str = "base.weights") -> Path:
    """The weights file's path, or one AuxcutError line: no such file, or a weights name that would need a download
    (auxcut.pipeline.params checks it when params are read, so the first stage already says it)."""
    path = Path(weights)
    if path.is_file():
        return path
    if _looks_like_weights_name(weights):
        raise AuxcutError(f"{param} {weights!r} names weights that torchvision would download, and auxcut downloads "
                          f"nothing at run time: fetch the .pth file elsewhere and set {param} to its path")
    raise AuxcutError(f"{param}: no such file {weights} (set {NO_WEIGHTS} for no weights)")


def load_weights(model: nn.Module, weights: str, param: str = "base.weights") -> bool:
    """Load a weights file into every layer of `model` but its classifier (which keeps its fresh init, sized to the
    classes); False for NO_WEIGHTS. The file is a state dict of the same arch: torchvision's own (its .pth files),
    auxcut's (a net's state_dict), or an auxcut checkpoint (models/base.pt: its first net). Every backbone key must be
    there with the same shape; anything else is one AuxcutError line naming the file."""
    if weights == NO_WEIGHTS:
        return False
    path = check_weights_file(weights, param)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same one line
        raise AuxcutError(f"{path}: not a PyTorch state dict ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(state, dict) and "nets" in state:  # an auxcut checkpoint
        state = state["nets"][0]["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AuxcutError(f"{path}: expected a state dict (names -> tensors)")
    arch_name = model.arch.get("name", CONVNET)
    head = getattr(model, "head", None)
    if isinstance(model, TorchvisionNet) and not any(k.startswith("features.") for k in state):
        # torchvision's own layout: the model's keys as they are, its classifier under `head`
        state = {f"features.net.{k}": v for k, v in state.items() if not k.startswith(f"{head}.")}
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        first = (f"missing {', '.join(missing[:3])}" if missing else "") + \
            ("; " if missing and unexpected else "") + (f"unexpected {', '.join(unexpected[:3])}" if unexpected else "")
        raise AuxcutError(f"{path}: not weights of a {arch_name} ({len(missing)} keys missing, {len(unexpected)} "
                          f"unexpected: {first})")
    for key, value in own.items():
        if state[key].shape != value.shape:
            stem = " (small_input true makes the stem 3x3: set base.small_input false for weights of the standard " \
                   "stem)" if model.arch.get("small_input") else ""
            raise AuxcutError(f"{path}: not weights of this {arch_name}: {key} is {tuple(state[key].shape)} in the "
                              f"file, {tuple(value.shape)} in the net{stem}")
    model.load_state_dict(state, strict=False)
    return True


def flops_per_image(model: nn.Module) -> int:
    """FLOPs of one forward pass on one image, counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    training = model.training
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, *model.arch["in_shape"]))
    model.train(training)
    return int(counter.get_total_flops())
