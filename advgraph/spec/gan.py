"""The root of a spec: prior, data, the two networks, and the training schedule."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import (AfterValidator, BeforeValidator, Field, PlainValidator, PrivateAttr,
                      ValidationInfo, field_validator, model_validator)

from ..names import is_name_stem
from ..fields import (SQRT3, Count, NonNegativeCount, NonNegativeReal, PositiveReal, Real, Seed,
                      Size, Strict, not_tiny)
from .layers import Network
from .objective import Loss, Regularizers

MAX_EXAMPLES = 10**9  # examples in a split
Examples = Annotated[int, Field(gt=0, le=MAX_EXAMPLES)]
NonNegativeExamples = Annotated[int, Field(ge=0, le=MAX_EXAMPLES)]
MAX_TOY_EXAMPLES = 10**7  # toy data is made in memory, in float64 first
ToyExamples = Annotated[int, Field(gt=0, le=MAX_TOY_EXAMPLES)]
NonNegativeToyExamples = Annotated[int, Field(ge=0, le=MAX_TOY_EXAMPLES)]
Fraction = Annotated[float, Field(ge=0, lt=1), AfterValidator(not_tiny)]

# ---- noise prior ----------------------------------------------------------------------------


class UniformPrior(Strict):
    """U(low, high)^dim; the default ±√3 has unit variance (the original MNIST setting)."""

    type: Literal["uniform"]
    dim: Size
    low: Real = -SQRT3
    high: Real = SQRT3

    @model_validator(mode="after")
    def _ordered(self) -> "UniformPrior":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        return self


class GaussianPrior(Strict):
    type: Literal["gaussian"]
    dim: Size
    mean: Real = 0.0
    std: PositiveReal = 1.0


Prior = Annotated[Union[UniformPrior, GaussianPrior], Field(discriminator="type")]

# ---- data -----------------------------------------------------------------------------------

MNIST_TRAIN_FILE_SIZE = 60_000


class IdxData(Strict):
    """MNIST or Fashion-MNIST from the official IDX files, pixels scaled to [0, 1].

    train = the first `train` examples of the official training file, valid = the `valid`
    examples after them (default: the last 10,000), test = the official test file (optionally
    only its first `test` examples).
    """

    dataset: Literal["mnist", "fashion-mnist"]
    root: str | None = None
    train: Examples = 50_000
    valid: NonNegativeExamples = 10_000
    test: Examples | None = None
    flatten: bool = True
    download: bool = True

    @model_validator(mode="after")
    def _fits(self) -> "IdxData":
        if self.train + self.valid > MNIST_TRAIN_FILE_SIZE:
            raise ValueError(
                f"train + valid = {self.train + self.valid} exceeds the "
                f"{MNIST_TRAIN_FILE_SIZE:,} examples of the official training file"
            )
        return self


class Cifar10Data(Strict):
    """CIFAR-10 from the python batches: train = the first `train` of the 50,000 training
    images, valid = the `valid` after them, test = the 10,000 test images. Pixels in [0, 1],
    or with `gcn: 55` the paper's global contrast normalisation (each image centred, L2 norm
    55). The original trained on all 50,000 (valid 0)."""

    dataset: Literal["cifar10"]
    root: str | None = None
    train: Examples = 50_000
    valid: NonNegativeExamples = 0
    test: Examples | None = None
    gcn: PositiveReal | None = None
    flatten: bool = True
    download: bool = True

    @model_validator(mode="after")
    def _fits(self) -> "Cifar10Data":
        if self.train + self.valid > 50_000:
            raise ValueError(f"train + valid = {self.train + self.valid} exceeds the 50,000 "
                             "training images")
        return self


class _ToySplits(Strict):
    train: ToyExamples = 50_000
    valid: NonNegativeToyExamples = 10_000
    test: NonNegativeToyExamples = 10_000
    seed: Seed = 0  # the data's own seed, independent of the training seed


class Gaussian1dData(_ToySplits):
    """The paper's Figure 1 setting: a 1-D Gaussian."""

    dataset: Literal["toy-gaussian1d"]
    mean: Real = 4.0
    std: PositiveReal = 0.5


class Ring2dData(_ToySplits):
    """A mixture of `modes` isotropic Gaussians on a circle: the standard mode-collapse probe."""

    dataset: Literal["toy-ring2d"]
    modes: Annotated[int, Field(ge=1, le=1000)] = 8
    radius: PositiveReal = 2.0
    std: PositiveReal = 0.02


class TfdData(Strict):
    """The Toronto Face Database, 48×48 grey faces, from a file the user supplies (it is not
    publicly downloadable): `TFD_48x48.mat` as distributed (MATLAB v5; reading it needs scipy)
    or an .npz with the same arrays: images (N, 48, 48) uint8, folds (N, 5) with 0 = unlabeled,
    1 = train, 2 = valid, 3 = test in each of the 5 official folds, and labs_ex (N, 1), the
    expression 1–7 (−1 where unlabeled). Pixels are scaled to [0, 1]."""

    dataset: Literal["tfd"]
    path: str | None = None  # default: TFD_48x48.{mat,npz} in --data-root, $ADVGRAPH_DATA[/tfd], the cache
    fold: Annotated[int, Field(ge=0, le=4)] = 0
    # Which of the fold's sets G is trained on (Pylearn2's `which_set`).
    train_on: Literal["unlabeled", "train", "train+unlabeled"] = "unlabeled"
    flatten: bool = True


class NpzData(Strict):
    """A user's own examples: one array (N, ...) in an .npz file. Relative paths are taken from
    the spec file's directory. valid/test are taken from the end of the array. `pixels`: the
    array holds uint8 pixels (as `advgraph data prepare` writes them), read scaled to [0, 1];
    any other dtype is refused. A `class_names` array of strings in the file names the
    classes in figures."""

    dataset: Literal["npz"]
    path: str
    key: str | None = None  # default: the file's only array when `labels` is not given
    labels: str | None = None  # an integer array (N,) in the same file: the class of each example
    valid: NonNegativeExamples = 0
    test: NonNegativeExamples = 0
    flatten: bool = True
    pixels: bool = False


def _not_bool(v: object) -> object:
    """YAML's true/false are ints to pydantic (true → 1): refused where a number is meant."""
    if isinstance(v, bool):
        raise ValueError(f"a number, not {str(v).lower()}")
    return v


def _count_or_share(v: object) -> int | float:
    """`valid`/`test` of images: a count (an int ≥ 0) or a share of the images (a float in
    (0, 1)); one message for every wrong value (a union would give one per member)."""
    if not isinstance(v, bool) and isinstance(v, (int, float)):
        if isinstance(v, float) and 0 < v < 1:
            return v
        if isinstance(v, int) or v.is_integer():
            if 0 <= v <= MAX_EXAMPLES:
                return int(v)
    shown = {True: "true", False: "false", None: "null"}.get(v, repr(v)) \
        if v is None or isinstance(v, bool) else repr(v)
    raise ValueError(f"a count ≥ 0 (at most {MAX_EXAMPLES:,}) or a share in (0, 1), e.g. 100 "
                     f"or 0.05; got {shown}")


NotBool = BeforeValidator(_not_bool)
Side = Annotated[int, NotBool, Field(gt=0, le=4096)]  # pixels
Channel = Annotated[int, NotBool, Field(ge=0, le=255)]
CountOrShare = Annotated[Union[int, float], PlainValidator(_count_or_share)]
LABEL_WORDS = ("none", "subdirs", "dataset.json")  # `labels` values that are not a file path


class ImagesData(Strict):
    """A folder (or .zip) of image files: PNG, JPEG, WebP, BMP, GIF (its first frame), TIFF.
    Each image is turned by its EXIF orientation, converted to `channels` (palette, greyscale,
    16-bit and RGBA over `background`) and brought to `size` by `fit`: "crop" scales it to
    cover H×W and cuts out the centre, "pad" scales it to fit inside H×W and pads with
    `background`. Pixels are scaled to [0, 1]. The first use packs the images into the cache
    (advgraph.cache: <root>/images); later runs read the packed array.

    Labels: "none"; "subdirs" (each top-level folder is a class, named by the folder, classes
    sorted by name); "dataset.json" (the word, not a path: the dataset.json at the root of the
    folder or zip, StyleGAN2-ADA's convention); or a labels file (JSON as StyleGAN2-ADA's
    dataset.json, or CSV `file,label`). `class_names` names the classes by label: a run records the names it found.
    valid/test: a count, or a share of the usable images; the split is a permutation of the
    sorted file list by `split_seed`."""

    dataset: Literal["images"]
    path: str
    size: tuple[Side, Side]  # (H, W)
    channels: Annotated[Literal[1, 3], NotBool] = 3
    fit: Literal["crop", "pad"] = "crop"
    background: tuple[Channel, Channel, Channel] = (0, 0, 0)
    labels: str = "none"  # "none", "subdirs", "dataset.json" or a labels file
    # a folder's name can be 255 bytes, each undecodable one shown as \xNN (4 characters)
    class_names: list[Annotated[str, Field(min_length=1, max_length=1024)]] | None = None
    valid: CountOrShare = 0
    test: CountOrShare = 0
    split_seed: Annotated[Seed, NotBool] = 0
    flatten: bool = False
    # read from a run's own spec.yaml (load_file(stored=True)): its class_names are those the
    # run recorded, not the user's; a mismatch then means the folder changed
    _recorded: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _stored(self, info: ValidationInfo) -> "ImagesData":
        self._recorded = bool(info.context and info.context.get("stored"))
        return self

    @property
    def recorded(self) -> bool:
        return self._recorded

    # Field validators, not a model validator: a problem is located at its own key (and at
    # --set when it was set there), not at `data:`.
    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            raise ValueError("empty: give the folder or .zip of images")
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            raise ValueError("empty: \"none\", \"subdirs\", \"dataset.json\" or a labels "
                             "file")
        return v

    @field_validator("class_names")
    @classmethod
    def _names(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is not None:
            if len(v) < 2:
                raise ValueError("a labelled data set needs at least two classes")
            if len(set(v)) != len(v):
                raise ValueError("each class needs its own name")
            if info.data.get("labels") == "none":
                raise ValueError("names the classes of labels; set labels too")
        return v


Data = Annotated[
    Union[IdxData, Cifar10Data, TfdData, Gaussian1dData, Ring2dData, NpzData, ImagesData],
    Field(discriminator="dataset")
]

# ---- training -------------------------------------------------------------------------------


class MomentumRamp(Strict):
    """Pylearn2's MomentumAdjustor: `init` until epoch `start`, linear to `final` at `saturate`."""

    init: Fraction
    final: Fraction
    start: NonNegativeCount = 1
    saturate: Count

    @model_validator(mode="after")
    def _ordered(self) -> "MomentumRamp":
        if self.saturate <= self.start:
            raise ValueError(f"saturate ({self.saturate}) must come after start ({self.start})")
        return self


class SGD(Strict):
    """SGD with momentum as the original code: v ← μ·v − lr·g; θ ← θ + v.

    lr_t = max(lr / lr_decay^t, min_lr), t = updates so far of this network's optimiser.
    """

    type: Literal["sgd"]
    lr: PositiveReal
    lr_decay: Annotated[float, Field(ge=1)] = 1.0  # lr / decay^t is computed in log space
    min_lr: NonNegativeReal = 0.0
    momentum: Fraction | MomentumRamp = 0.0


class Adam(Strict):
    type: Literal["adam"]
    lr: PositiveReal = 2e-4
    beta1: Fraction = 0.5
    beta2: Fraction = 0.999
    eps: PositiveReal = 1e-8


Optimizer = Annotated[Union[SGD, Adam], Field(discriminator="type")]


class Every(Strict):
    """An interval: exactly one of `epochs` or `steps` (steps = iterations of Algorithm 1)."""

    epochs: Count | None = None
    steps: Count | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Every":
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("give exactly one of 'epochs' or 'steps' (on the command line, "
                             "setting one replaces the spec's other: `overrides` training.stop.steps=N)")
        return self


class ParzenMonitor(Strict):
    """A Parzen estimate on validation data during training, as the original code monitored
    (each epoch, 100 samples, σ = 0.2). Its own noise stream: training is unaffected."""

    every: Every = Field(default_factory=lambda: Every(epochs=1))
    samples: Annotated[int, Field(gt=0, le=1_000_000)] = 100
    sigma: PositiveReal = 0.2
    valid: Examples | None = None  # validation examples used [default: all]


class Monitor(Strict):
    parzen: ParzenMonitor | None = None


class SampleGrid(Strict):
    """A grid of G's samples from the same noise each time, written to
    runs/<name>/samples/training/ (a plot for toy data)."""

    every: Every | None = None  # default: with every checkpoint
    rows: Annotated[int, Field(gt=0, le=64)] = 8
    cols: Annotated[int, Field(gt=0, le=64)] = 8


class Training(Strict):
    batch_size: Annotated[int, Field(gt=0, le=2**24)] = 100
    k: Annotated[int, Field(gt=0, le=10_000)] = 1  # D steps per G step
    loss: Loss = "non_saturating"
    # The 2014 name of the choice between minimax and non_saturating (specs before `loss`):
    # still read, written back as `loss`.
    g_loss: Literal["non_saturating", "minimax"] | None = Field(default=None, exclude=True)
    regularizers: Regularizers = Field(default_factory=Regularizers)
    optimizer: Optimizer
    d_optimizer: Optimizer | None = None  # per-network overrides of `optimizer`
    g_optimizer: Optimizer | None = None
    stop: Every
    seed: Seed = 0
    checkpoint: Every = Field(default_factory=lambda: Every(epochs=1))
    keep_checkpoints: Annotated[int, Field(gt=0, le=1_000_000)] = 5
    log_every: Count = 100  # steps between metric lines
    monitor: Monitor = Field(default_factory=Monitor)
    sample_grid: SampleGrid | None = Field(default_factory=SampleGrid)  # null: none

    @model_validator(mode="before")
    @classmethod
    def _old_g_loss(cls, data):
        """`g_loss` (older specs) is `loss`; both given must agree."""
        if isinstance(data, dict) and data.get("g_loss") is not None:
            old, new = data["g_loss"], data.get("loss")
            if new is not None and new != old:
                raise ValueError(f"g_loss ({old!r}) and loss ({new!r}) disagree: `g_loss` is "
                                 "the older name of `loss`; give only `loss`")
            if new is None and isinstance(old, str):
                data = {**data, "loss": old}
        return data

    def optimizer_for(self, net: Literal["G", "D"]):
        own = self.g_optimizer if net == "G" else self.d_optimizer
        return own if own is not None else self.optimizer


class LabelCondition(Strict):
    """A conditional GAN (Mirza & Osindero 2014): G and D both see the example's class as a
    one-hot vector y. With `layers` networks y is concatenated to the input; a `graph` network
    says itself where y enters (an input named y)."""

    type: Literal["label"]
    classes: Annotated[int, Field(ge=2, le=100_000)]


def _run_name_stem(name: str | None, info: ValidationInfo) -> str | None:
    stored = bool(info.context and info.context.get("stored"))  # a run's own spec.yaml
    if name is not None and not is_name_stem(name) and not stored:
        raise ValueError(f"{name!r} cannot name runs (<name>-001, …): use letters, digits, '.', "
                         "'_' or '-', starting with a letter or digit, at most 96 characters")
    return name


class GanSpec(Strict):
    name: Annotated[str | None, AfterValidator(_run_name_stem)] = None
    description: str | None = None
    condition: LabelCondition | None = None
    prior: Prior
    data: Data
    generator: Network
    discriminator: Network
    training: Training
