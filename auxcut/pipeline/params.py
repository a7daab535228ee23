"""The schema of params.yaml, validated strictly so that a typo or a wrong type fails loudly.

Every key is required and has no default here: params.yaml is the one place where values live,
so DVC's view of what a stage reads is the whole truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from auxcut import AuxcutError
from auxcut.core import paths
from auxcut.data import coarse
from auxcut.variants import checks, occlusion


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"must not repeat, got {values}")
    return values


Distinct = AfterValidator(_distinct)  # a list param whose entries each name one thing, e.g. occlusion.sets


class SplitParams(_Strict):
    train: float = Field(gt=0, lt=1)
    val: float = Field(gt=0, lt=1)
    test: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitParams":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1, got {total:g}")
        return self


class DataParams(_Strict):
    # mnist keeps its official test set: data.split's train and val decide only how val is carved from the official
    # train set (val share = val / (train + val)), its test fraction is unused; max_per_class caps each official set
    source: Literal["digits", "mnist", "utkface", "imagefolder"]
    path: str = Field(min_length=1)  # dvc.yaml names it as a dep of prepare, so it must name something
    classes: Literal["age", "age_race", "age_race_gender"]
    groups_csv: str  # a dep of prepare in dvc.yaml like `path`: data/no_groups.csv (no group columns) for none
    image_size: int = Field(ge=4, le=1024)
    max_per_class: int = Field(ge=0)
    split: SplitParams
    # classes merged into coarse ones, e.g. [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]; [] keeps the classes (auxcut.data.coarse)
    coarse: list[list[int]]

    @field_validator("coarse")
    @classmethod
    def _two_groups_or_none(cls, value: list[list[int]]) -> list[list[int]]:
        if len(value) == 1:  # the rest of the partition check needs the classes (check_combinations, or prepare)
            raise ValueError(f"a merge needs at least 2 groups (or [] for none), got {value}")
        return value

    @field_validator("groups_csv")
    @classmethod
    def _groups_csv_names_a_file(cls, value: str) -> str:
        if not value:
            raise ValueError("must name a file, as dvc.yaml declares it a dep of prepare: data/no_groups.csv "
                             "(a CSV with no group columns) for no group attributes")
        return value


class TrainParams(_Strict):
    width: int = Field(ge=1)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    patience: int = Field(ge=1)
    augment: bool


def _arch_name(value: str) -> str:
    """An arch auxcut.nets.backbones can build; torch is imported only for a name other than convnet."""
    if value == "convnet":
        return value
    from auxcut.nets import backbones

    return backbones.check_name(value)


NO_WEIGHTS = "data/no_weights"  # base.weights' none (auxcut.nets.backbones.NO_WEIGHTS), checked without importing torch


class ArchParams(_Strict):
    """Which net a stage builds (auxcut.nets.backbones): convnet, pmnist_net[_relu6|_sigmoid|_tanh] or a torchvision
    classification model by name."""

    arch: Annotated[str, AfterValidator(_arch_name)]
    small_input: Literal["auto"] | bool  # torchvision nets: 3x3 stride-1 stem, no first max-pool; auto: at <= 64 px


class BaseParams(TrainParams, ArchParams):
    """The base classifier (stage train_base)."""

    weights: str = Field(min_length=1)  # a dep of train_base in dvc.yaml: a weights file, or data/no_weights for none
    freeze: Literal["none", "backbone"]  # backbone: only the classifier trains (linear probing of the loaded weights)


class AuxParams(TrainParams, ArchParams):
    objective: Literal["plain", "residual", "decorrelated"]  # see auxcut.method.objectives
    strength: float = Field(ge=0)  # how hard the objective pushes the aux away from the base's errors; 0 = plain
    view: Literal["full", "gray", "low", "center"]  # what the aux sees of the image (auxcut.nets.models.View)
    mode: Literal["separate", "head"]  # a small CNN per cut, or binary heads on the base's backbone (auxcut.variants.joint)
    target: Literal["cut", "random_cut", "classes"]  # what the aux learns (auxcut.method.targets)
    random_draw: int = Field(ge=0)  # random_cut: which draw of the random balanced cut (with seed)
    min_ratio: float  # the base has at least this many times the auxes' parameters (auxcut.method.auxiliary)

    @field_validator("min_ratio")
    @classmethod
    def _at_most_the_base(cls, value: float) -> float:
        if value < 1:
            raise ValueError(f"must be at least 1 (auxes at most as large as the base; the seed method's rule is 10), "
                             f"got {value:g}")
        return value


class ConfusionParams(_Strict):
    # the file whose labels are the graph's nodes (a dep of confusion, relabel and train_aux in dvc.yaml): the given
    # classes, or the fine labels `discover` found inside them
    labels: Literal["data/prepared/samples.csv", "data/fine_labels.csv"]


class MaxcutParams(_Strict):
    method: Literal["auto", "exact", "lowrank", "cvxpy"]
    hyperplanes: int = Field(ge=1000)
    exact_max_n: int = Field(ge=0, le=24)
    polish: Literal["tabu", "none"]  # local search after the hyperplane rounding
    depth: int = Field(ge=1, le=6)  # levels of the tree of cuts; 1 = the one cut of the seed method


class HeadParams(_Strict):
    type: Literal["logistic", "naive_bayes"]
    aux_features: Literal["nodes", "paths"]  # the aux probabilities as they are, or each class's path log-probability
    C: float = Field(gt=0)
    max_iter: int = Field(ge=1)


class AttributesParams(TrainParams):
    """One backbone with a head per attribute (masked loss) against one CNN per attribute (auxcut.variants.attributes)."""

    names: Annotated[list[str], Distinct]  # group attributes and/or `cut`, `class`; [] = every group attribute and the cut
    hidden: list[float] = Field(min_length=1)  # fractions of each attribute's train labels hidden, one comparison each
    view: Literal["full", "gray", "low", "center"]

    @model_validator(mode="after")
    def _fractions(self) -> "AttributesParams":
        for value in self.hidden:
            if not 0 <= value < 1:
                raise ValueError(f"each hidden fraction must be in [0, 1) (1 would hide every label), got {value:g}")
        return self


class ExitsParams(TrainParams):
    """Early exits, coarse -> fine, on a copy of the base (auxcut.variants.exits); `width` is the exit branches' width."""

    groups: Literal["tree", "prefix", "clusters"] | list[list[int]]  # what the coarse exits predict (see params.yaml)
    n_groups: int  # groups clusters: how many clusters of the val confusion graph (2..classes - 1)
    after: list[int] = Field(min_length=1)  # exit points (1-based) after which a coarse exit sits (exits.exit_points)
    backbone: Literal["frozen", "joint"]  # frozen: only the exits train (the final exit stays the base); joint: all
    thresholds: list[float] = Field(min_length=1)  # confidence thresholds swept per exit

    @model_validator(mode="after")
    def _shape(self) -> "ExitsParams":
        if self.after != sorted(set(self.after)) or self.after[0] < 1:
            raise ValueError(f"after must be increasing conv layer numbers from 1, got {self.after}")
        if any(not 0 < t <= 1 for t in self.thresholds):
            raise ValueError(f"thresholds must be in (0, 1], got {self.thresholds}")
        return self

    @field_validator("groups")
    @classmethod
    def _no_empty_group(cls, value: str | list[list[int]]) -> str | list[list[int]]:
        for index, group in enumerate(value if isinstance(value, list) else []):
            if not group:  # an exit could answer a group no image is in, and be "right" every time
                raise ValueError(f"group {index} is empty in {value}: each group names at least one class")
        return value


class OcclusionParams(_Strict):
    """Occluded copies of the test split (auxcut.variants.occlusion): the PMNIST cuts and random patches."""

    sets: Annotated[list[Literal["horizontal", "vertical", "diagonal", "triple", "patches"]], Distinct] = Field(
        min_length=1)
    patch_count: int = Field(ge=1)  # random squares per image in the `patches` set; fewer than would cover the image
    patch_size: float = Field(gt=0, lt=1)  # their side, as a fraction of the image side (1 would remove it all)


class MissingParams(_Strict):
    """Heads on the frozen base backbone's bounded features, present and/or missing (auxcut.variants.missing)."""

    map: Literal["pooled", "spatial"]  # the pooled embedding, or the last conv map (the paper's; convnet, pmnist_net)
    features: Annotated[list[Literal["present", "missing", "both"]], Distinct] = Field(min_length=1)
    hidden: int = Field(ge=1)  # units of each head's hidden layer (pooled: tanh; spatial: the base's activation)
    alpha: float = Field(ge=0)  # L2 penalty (spatial: SGD's weight decay)
    max_iter: int = Field(ge=1)  # pooled: the most epochs (early-stopped); spatial: the epochs
    cap_quantile: float = Field(gt=0, le=1)  # each feature's bound: this quantile of its train values
    lr: float = Field(gt=0)  # spatial: SGD's learning rate
    momentum: float = Field(ge=0, lt=1)  # spatial: SGD's momentum
    batch_size: int = Field(ge=1)  # spatial


class DiscoveryParams(_Strict):
    """Fine labels found inside the coarse classes from the base's features (auxcut.variants.discovery)."""

    augmentations: int = Field(ge=1)  # random shifts (and flips, where the base trained with them) per image
    keep: float = Field(gt=0, le=1)  # the most certain share of each coarse class's train images that is clustered
    reduce: Literal["umap", "none"]  # umap: HDBSCAN clusters the UMAP layout | none: the features themselves (an ablation)
    n_neighbors: int = Field(ge=2)  # UMAP's neighbourhood
    n_components: int = Field(ge=2)  # UMAP's output dimensions (the first two are plotted)
    min_cluster_size: int = Field(ge=2)  # HDBSCAN's


class FineParams(_Strict):
    """CNNs that learn from the discovered fine labels, against the base on the coarse ones (stages train_fine,
    score_fine); they are the base's architecture and width, so the comparison is at equal size."""

    modes: Annotated[list[Literal["pretrain", "multihead"]], Distinct] = Field(min_length=1)
    epochs: int = Field(ge=1)  # pretrain: on the fine labels
    finetune_epochs: int = Field(ge=1)  # pretrain: then on the coarse labels; multihead: epochs + finetune_epochs
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    patience: int = Field(ge=1)
    augment: bool


class FairnessParams(_Strict):
    bootstrap: int = Field(ge=10)
    ci: float = Field(gt=0, lt=1)


class TrackingParams(_Strict):
    enabled: bool  # false: no stage touches MLflow (quick runs); the DVC outputs are the same either way
    experiment: str = Field(min_length=1)
    required: bool  # true: a stage fails when MLflow cannot be reached; false: it says so and carries on

    @model_validator(mode="after")
    def _required_needs_enabled(self) -> "TrackingParams":
        if self.required and not self.enabled:
            raise ValueError("required is true but enabled is false: a stage cannot require the store it never opens")
        return self


class ValidateParams(_Strict):
    """Lower bounds that `make validate` (auxcut.apps.validate) checks on the metrics; no stage reads them."""

    head_min_gain_over_base: float = Field(ge=-1, le=1)
    cut_over_bound_min: float = Field(ge=0, le=1)
    aux_over_majority_min: float = Field(ge=-1, le=1)


class Params(_Strict):
    seed: int = Field(ge=0, lt=2**32)  # numpy's and scikit-learn's seeds are unsigned 32-bit
    data: DataParams
    base: BaseParams
    aux: AuxParams
    confusion: ConfusionParams
    maxcut: MaxcutParams
    head: HeadParams
    attributes: AttributesParams
    exits: ExitsParams
    occlusion: OcclusionParams
    missing: MissingParams
    discovery: DiscoveryParams
    fine: FineParams
    fairness: FairnessParams
    tracking: TrackingParams
    gates: ValidateParams = Field(alias="validate")  # `validate` itself would shadow pydantic's BaseModel.validate

    @model_validator(mode="after")
    def _combinations(self) -> "Params":
        """Params that are each fine but wrong together: caught when any stage starts, before any training. Checks
        that need the data itself (an image folder's classes and groups) are made where it is read."""
        check_combinations(self)  # an AuxcutError, which pydantic lets through to load_params
        return self


def check_combinations(p: Params) -> None:
    """Params that are each fine but wrong together (checks that need an image folder's own classes and groups are
    made where it is read)."""
    if p.aux.mode == "head" and (p.aux.objective != "plain" or p.aux.view != "full"):
        raise AuxcutError(f"aux.mode head puts the cut heads on the base's own backbone, so aux.objective "
                          f"must be plain and aux.view full (got {p.aux.objective} and {p.aux.view})")
    layers = checks.conv_layers(p.data.image_size)
    if p.base.arch == "convnet" and p.exits.after[-1] >= layers:  # other archs' points are counted on the net itself
        raise AuxcutError(f"exits.after {p.exits.after} reaches layer {p.exits.after[-1]}, but at "
                          f"data.image_size {p.data.image_size} the net has {layers} conv layers: an early exit sits "
                          f"after one of layers 1..{layers - 1}")
    if p.exits.groups == "tree" and p.confusion.labels == str(paths.FINE_LABELS):
        raise AuxcutError(f"exits.groups tree groups the data's classes by the tree of cuts, but confusion.labels "
                          f"{p.confusion.labels} cuts the fine labels inside them: set exits.groups to prefix or a "
                          f"list of groups, or confusion.labels to the given classes")
    classes = checks.known_classes(p.data.source, p.data.classes)
    check_aux_target(p)
    if p.data.coarse and classes is not None:  # an image folder's classes are checked when prepare reads them
        checks.check_groups(p.data.coarse, classes, "data.coarse")
        classes = coarse.names(p.data.coarse, classes)  # what every stage after prepare calls the classes
    if classes is not None:
        if p.exits.groups == "prefix":
            checks.check_groups(checks.prefix_groups(classes), classes, "exits.groups prefix (class names before the first '/')")
        elif isinstance(p.exits.groups, list):
            checks.check_groups(p.exits.groups, classes)
        elif p.exits.groups == "clusters":  # an image folder's classes are counted when train_exits reads the data
            checks.check_n_groups(p.exits.n_groups, len(classes))
    if p.data.source in checks.SOURCE_ATTRIBUTES:
        # merged UTKFace classes keep the original class as `fine`; digits' `digit` already is it
        hidden = ["fine"] if p.data.coarse and p.data.source == "utkface" else []
        checks.check_attributes(p.attributes.names, checks.SOURCE_ATTRIBUTES[p.data.source] + hidden)
    occlusion.check_leaves_pixels(p.occlusion.sets, p.data.image_size, p.occlusion.patch_count, p.occlusion.patch_size)
    for param, arch, view in (("base.arch", p.base, "full"), ("aux.arch", p.aux, p.aux.view)):
        if arch.arch != "convnet" and (param == "base.arch" or p.aux.mode == "separate"):  # convnet takes any size
            from auxcut.nets import backbones

            backbones.check_image_size(arch.arch, p.data.image_size, view, arch.small_input, param)
    check_aux_budget(p, classes)
    if p.missing.map == "spatial" and p.base.arch != "convnet":
        from auxcut.nets import backbones

        backbones.check_last_map(p.base.arch)
    if p.base.weights != NO_WEIGHTS:  # a file to load: it must be there before any stage trains
        from auxcut.nets import backbones

        backbones.check_weights_file(p.base.weights)
    elif p.base.freeze == "backbone":
        raise AuxcutError(f"base.freeze backbone trains only the classifier, on the backbone base.weights loads, but "
                          f"base.weights is {NO_WEIGHTS} (none): give a weights file or set base.freeze none")


def check_aux_budget(p: Params, classes: list[str] | None) -> None:
    """The 10x rule (aux.min_ratio) before any training, where the data's shape and classes follow from params: the
    base as params build it against the root cut's aux (or the classes aux). A deeper tree's further auxes are counted
    by train_aux, once the cut is known; an image folder's classes, once prepare has read them."""
    channels = checks.SOURCE_CHANNELS.get(p.data.source)
    if p.aux.mode != "separate" or classes is None or channels is None:
        return
    from auxcut.method import auxiliary  # torch: only for the params that need it
    from auxcut.nets import backbones
    from auxcut.nets.models import count_parameters

    in_shape = (channels, p.data.image_size, p.data.image_size)
    base = count_parameters(backbones.make(p.base.arch, in_shape, len(classes), width=p.base.width,
                                           small_input=p.base.small_input))
    auxiliary.check_budget(in_shape, p.aux.width, p.aux.view, 1, base, p.aux.arch, p.aux.small_input,
                           min_ratio=p.aux.min_ratio, n_outputs=len(classes) if p.aux.target == "classes" else 1)


def check_aux_target(p: Params) -> None:
    """The controls of aux.target train one aux, not one per cut of data/cut.json's tree of max-cuts; the classes aux
    is a separate multiclass net with the plain loss (the objectives weigh the base's side of a cut)."""
    target = p.aux.target
    if target == "cut":
        return
    if p.maxcut.depth > 1:
        raise AuxcutError(f"aux.target {target} trains one aux, but maxcut.depth {p.maxcut.depth} asks for a tree of "
                          f"cuts with one aux per cut: set maxcut.depth 1 or aux.target cut")
    if p.head.aux_features == "paths":
        raise AuxcutError(f"head.aux_features paths reads the aux probabilities as paths down the tree of max-cuts, "
                          f"which aux.target {target} does not learn: set head.aux_features nodes or aux.target cut")
    if target == "classes" and (p.aux.mode != "separate" or p.aux.objective != "plain"):
        raise AuxcutError(f"aux.target classes trains one separate multiclass aux with the plain loss, so aux.mode "
                          f"must be separate and aux.objective plain (got {p.aux.mode} and {p.aux.objective})")


def _coerce_floats(raw: Any, schema: type[BaseModel]) -> Any:
    """YAML reads `1e-3` as a string and `1` as an int; accept ints where a float is expected."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for field_name, field in schema.model_fields.items():
        name = field.alias or field_name  # params.yaml spells a field by its alias where it has one
        if name not in out:
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out[name] = _coerce_floats(out[name], ann)
        elif ann is float:
            value = out[name]
            if isinstance(value, int) and not isinstance(value, bool):
                out[name] = float(value)
            elif isinstance(value, str):
                try:
                    out[name] = float(value)
                except ValueError:
                    pass  # left as is: validation names the key and the bad value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: plain YAML keeps the last value
    without a word (DVC refuses the file, so the stages and DVC would read different params)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise AuxcutError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; any problem becomes one AuxcutError line naming the key."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except AuxcutError as exc:
        raise AuxcutError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise AuxcutError(f"{path}: file not found (expected the pipeline's params file)") from None
    except yaml.YAMLError as exc:
        raise AuxcutError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise AuxcutError(f"{path}: expected a mapping of params at the top level")
    try:
        return Params.model_validate(_coerce_floats(raw, Params))
    except AuxcutError as exc:  # a check across sections: already one line naming the params
        raise AuxcutError(f"{path}: {exc}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                problems.append(f"{key}: unknown param")
            elif err["type"] == "missing":
                problems.append(f"{key}: missing")
            elif err["type"] == "value_error":  # our own validators' messages, which say what was given
                problems.append(f"{key}: {str(err['ctx']['error'])}")
            else:
                problems.append(f"{key}: {err['msg'].lower()} (got {err.get('input')!r})")
        raise AuxcutError(f"{path}: " + "; ".join(problems)) from None
