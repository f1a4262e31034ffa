"""Constants fixed by the paper (Luo, FER with CNN + attention) and by FER2013 itself.

Every other module imports them from here, so a number the paper fixes is written once.
"""

import errno
from pathlib import Path

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
"""The one canonical class order (the Kaggle folder order); labels are indices into it."""

CSV_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The original challenge file `fer2013.csv` numbers the emotions in this order."""

IMAGE_SIZE = 48
SPLITS: tuple[str, ...] = ("train", "val", "test")
"""train = Training, val = PublicTest, test = PrivateTest; `test_all` = val + test."""
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
PREFIX_TO_SPLIT = {"Training_": "train", "PublicTest_": "val", "PrivateTest_": "test"}

# The paper's training recipe (Section 2.3).
BATCH_SIZE = 64
LEARNING_RATE = 0.002
MAX_EPOCHS = 100
EARLY_STOPPING_PATIENCE = 16
SHIFT_RANGE = 0.1  # ImageDataGenerator width/height_shift_range; the paper names no value
# ReduceLROnPlateau: the paper names no values; these are explicit so runs are comparable.
REDUCE_LR_FACTOR = 0.5
REDUCE_LR_PATIENCE = 5
REDUCE_LR_MIN = 1e-5
SE_RATIO = 16
# Widths the paper leaves out (benchmarks/README.md, "Width study", says how the defaults were chosen).
FILTERS: tuple[int, ...] = (32, 64, 128)
DENSE_UNITS = 256
PAPER_CONFIG = {"filters": FILTERS, "dense_units": 512, "dense_dropout": 0.0, "batch_norm": True}
"""Where the paper is silent, the configuration its full recipe is retrained with (the Table 1 issue): the width
study's best row on PublicTest among those whose full run is affordable on 2 CPU cores (benchmarks/README.md, "Width
study"). Batch norm is a documented deviation from the paper's text. `bash benchmarks/full_run.sh paper se baseline`
trains it."""

# Table 1 of the paper, for side-by-side comparison only (never used as our results).
PAPER_TABLE1 = {
    "baseline": {"train_loss": 0.3767, "train_accuracy": 0.8621, "test_loss": 1.1134, "test_accuracy": 0.6801},
    "se": {"train_loss": 0.2913, "train_accuracy": 0.8945, "test_loss": 1.2447, "test_accuracy": 0.6904},
}

DATA_ENV_VAR = "FER2013_PATH"
FERPLUS_ENV_VAR = "FERPLUS_PATH"
"""Folder holding FER+'s fer2013new.csv and the join table msambare_to_fer2013_row.csv (fer_utils.ferplus)."""

# Training options (fer_utils.training and the CLI share them).
PRECISIONS: tuple[str, ...] = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
SCHEDULES: tuple[str, ...] = ("plateau", "cosine")
PROTOCOLS = {"clean": "val", "paper": "test_all"}
"""Validation split per protocol: clean = PublicTest only; paper = all 7,178 test images (as the paper did)."""

# The course's two models: kind (as the CLI and run folders name it) -> display name.
MODELS: dict[str, str] = {"baseline": "Baseline CNN", "se": "SE-CNN"}

# Defaults of the training options that are not the paper's (the notebooks' parameters and the CLI use these).
DENSE_DROPOUT = 0.5  # dropout after the dense layer: our choice, the paper names none
PROTOCOL = "clean"
PRECISION = "auto"
SCHEDULE = "plateau"

ROBUST_RECIPE = {"flip": True, "augment": ("photometric",)}
"""What the regularisation and augmentation study let into the robust recipe by its rule (benchmarks/README.md,
"Rows run so far"): left-right flips (row se_flip) and photometric augmentation (row se_photo)."""

PROFILES: dict[str, dict] = {
    "smoke": {"per_class": 40, "epochs": 2},
    "quick": {"per_class": None, "epochs": 40, "schedule": "cosine", "flip": True, "dense_dropout": 0.0,
              "batch_norm": True},
    "paper": {"per_class": None, "epochs": MAX_EPOCHS, **PAPER_CONFIG},
    "literal": {"per_class": None, "epochs": MAX_EPOCHS},
    "robust": {"per_class": None, "epochs": 30, "schedule": "cosine", **PAPER_CONFIG, **ROBUST_RECIPE},
}
"""Notebook parameters per profile (`python -m fer_utils run --profile NAME`): smoke = minutes on a laptop; quick = a
short schedule with flips, batch norm and no dense dropout (benchmarks/README.md says why); paper = the paper's full
schedule with PAPER_CONFIG where the paper is silent (what reports/ publishes); literal = the same schedule with the
notebooks' defaults (no batch norm, dense 256 with dropout: the models in reports/v1/); robust = PAPER_CONFIG with
ROBUST_RECIPE on the regularisation study's schedule (30 warm-up + cosine epochs: benchmarks/robust_rows.sh), what
reports/robust/ publishes. A setting a profile leaves out keeps the notebooks' default (the constants above)."""
SYNTHETIC_SMOKE = {"per_class": None, "epochs": 8, "filters": (8, 16, 32), "dense_dropout": 0.0}
"""On the small synthetic set the smoke profile uses all of it, enough epochs to learn it well above chance, a quarter
of the widths (8-16-32) and no dense dropout (as PAPER_CONFIG), with which both models learn it in 8 epochs (84-91% of
the test faces on seeds 0 and 1, where the paper's widths need more epochs): the default main job stays short."""
SYNTHETIC_SMOKE_NOTEBOOKS: dict[str, dict] = {
    "03_": {"demo_per_class": 50, "demo_epochs": 1, "n_gate_mean": 500},
    "05_": {"n_weight_demo": 500},
    "06_": {"n_control": 200, "n_occlusion": 20, "n_gate_mean": 500, "n_robustness": 200},
    "08_": {"n_robustness": 200},
    "09_": {"demo_per_class": 50, "n_probe": 100},
}
"""Smaller samples for the analysis notebooks (keyed by the notebook's file-name prefix) in the smoke run on the
synthetic set only: their defaults are sized for FER2013's statistics, while on the small synthetic set the numbers
only check that every step runs, and these samples keep the default main job short. `-p NAME VALUE` still wins."""

# Augmentations beyond the paper (fer_utils.augment, notebook 08; the robust-model issue).
AUGMENTATIONS: tuple[str, ...] = ("geometric", "photometric", "degrade", "erase")
"""The augmentation groups `fer_utils.augment.augmentation` knows, in the order it applies them."""
AUGMENT = {
    "rotation_degrees": 10.0,  # geometric: rotation uniform in +-10 degrees
    "zoom": 0.1,  # geometric: zoom in or out by up to 10%
    "gamma": 1.6,  # photometric: gamma log-uniform in [1/1.6, 1.6]
    "contrast": 0.7,  # photometric: contrast factor uniform in [0.3, 1.7], around each face's mean
    "brightness": 70.0,  # photometric: up to +-70 grey levels added
    "degrade_rate": 0.5,  # degrade: each of optics, noise and JPEG hits an image with this probability
    "noise": 25.0,  # degrade: Gaussian sensor noise, sigma uniform in [0, 25] grey levels
    "jpeg_quality": (5.0, 95.0),  # degrade: JPEG quality uniform in this range
    "blur": 2.0,  # degrade: Gaussian blur, sigma uniform in [0.3, 2] pixels (half the optics draws)
    "downscale": (0.3, 0.8),  # degrade: shrink to this fraction of the size and back (the other half)
    "erase_rate": 0.5,  # erase: each face gets one random rectangle erased with this probability
    "erase_scale": (0.02, 0.15),  # erase: the rectangle's share of the face's area
}
ROBUSTNESS_TARGETS: dict[tuple[str, float], float] = {
    ("mirror", 1): 0.5, ("shift", 4): 1.0, ("brightness", -60): 2.0, ("brightness", 60): 2.0, ("contrast", 0.5): 2.0,
    ("noise", 10): 4.0, ("jpeg", 10): 4.0, ("blur", 1.0): 4.0,
}
"""The robust-model issue's targets: (perturbation, strength) of fer_utils.explain.perturb at 06's middle strengths ->
the most accuracy points a robust model may lose to it. The robustness summary of a study row is the mean and the
worst of these losses (benchmarks/robustness.py)."""
ROBUST_MODEL_TARGETS = {"private_test_accuracy": 0.70, "ece_after": 0.05, "run_hours": 3.0}
"""The robust-model issue's other targets for the robust SE-CNN: PrivateTest accuracy of its single-view checkpoint
(PublicTest choosing), expected calibration error on PrivateTest after temperature scaling, and hours of one full run
on the 2 CPU cores (`publish` reads them into reports/robust/README.md)."""
LABEL_SMOOTHING = 0.0  # the paper's loss has none (the robust study tries 0.1: benchmarks/robust_rows.sh)
WEIGHT_DECAY = 0.0  # the paper's Adam has none; > 0 switches to AdamW (decoupled weight decay)

# Attention beyond the paper's SE block (fer_utils.attention, notebook 09; the attention issue, benchmarks/README.md).
ATTENTIONS: tuple[str, ...] = ("se", "se_every", "eca", "cbam", "spatial")
"""What `models.build_cnn(attention=...)` puts into each conv block: se = the paper's SE block before each pooling;
se_every = an SE block after every convolution (the paper's proposal); eca = efficient channel attention (a 1-D
convolution across the channels) before each pooling; cbam = CBAM's channel then spatial attention there; spatial =
CBAM's spatial attention alone. None: no attention (or SE when a reduction ratio is given: the paper's two models)."""
ECA_GAMMA, ECA_B = 2, 1  # ECA's kernel size for C channels: |(log2 C + b) / gamma|, made odd (Wang et al., 2020)
SPATIAL_KERNEL = 7  # CBAM's spatial attention: one 7x7 convolution of the channel mean and max maps (Woo et al., 2018)

# The course repository: its notebooks/, reports/, data/ and benchmarks/ are files of a clone, not of the package.
REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository's root in a clone (`pip install -e .`); after `pip install .`, the site-packages folder instead."""
NOT_IN_INSTALL = ("not in this install: `pip install .` copies the fer_utils package alone; the notebooks, the "
                  "published models and the benchmarks come with a clone of the course repository, installed with "
                  "`pip install -e .` in it")
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
"""The course notebooks (`NN_name.ipynb`), which `run` executes in order and `export` copies `#@save` cells from."""
PUBLISHED_DIR = REPO_ROOT / "reports"
"""The published paper models (run folders baseline/ and se/; the literal recipe's in v1/): `python -m fer_utils
publish` writes them, `run` without --profile explores them on FER2013, `predict` uses the SE-CNN."""
ROBUST_DIR = PUBLISHED_DIR / "robust"
"""The published robust models (run folders baseline/ and/or se/), which notebook 08 measures beside the paper's."""
PUBLISH_TARGETS: tuple[str, ...] = ("paper", "robust")
"""What `publish` judges two runs against in their README: Table 1's reproduction targets (reports/), or the
robust-model issue's (ROBUST_MODEL_TARGETS, ROBUSTNESS_TARGETS: reports/robust/)."""


def repo_path(*parts: str | Path) -> Path:
    """A file or folder of the course repository that must be there, such as notebooks/ or reports/se/model.keras.

    Args:
        parts: the path below `REPO_ROOT` (an absolute path, such as PUBLISHED_MODEL, is taken as it is).

    Returns:
        The path, which exists.

    Raises:
        FileNotFoundError naming the path and saying how to get it (`NOT_IN_INSTALL`): one line in the CLI, exit 2.
    """
    path = REPO_ROOT.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, NOT_IN_INSTALL, str(path))
    return path


# Faces in real photos and videos (fer_utils.media, faces and predict: `python -m fer_utils predict`; notebook 07).
PUBLISHED_MODEL = PUBLISHED_DIR / "se" / "model.keras"
"""The default model of `predict`: the published SE-CNN."""
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"  # in cv2.data.haarcascades (4.x wheels); benchmarks/README.md
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 5
MIN_FACE = 30  # smallest face searched for, in pixels of the detection image
DETECT_MAX_SIDE = 1024  # larger photos are downscaled to this longest side for detection (boxes stay in the original)
FACE_MARGIN = 0.1
"""Crop margin per side, as a fraction of the detector's box: FER2013's framing, measured by running the same
detector on FER2013's own images (its box spans 82% of their width: (1 / 0.823 - 1) / 2 = 0.108; benchmarks/README.md,
notebook 07)."""
