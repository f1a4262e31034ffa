"""Constants fixed by the paper (Luo, FER with CNN + attention) and by FER2013 itself.

Every other module imports them from here, so a number the paper fixes is written once.
"""

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

# Table 1 of the paper, for side-by-side comparison only (never used as our results).
PAPER_TABLE1 = {
    "baseline": {"train_loss": 0.3767, "train_accuracy": 0.8621, "test_loss": 1.1134, "test_accuracy": 0.6801},
    "se": {"train_loss": 0.2913, "train_accuracy": 0.8945, "test_loss": 1.2447, "test_accuracy": 0.6904},
}

DATA_ENV_VAR = "FER2013_PATH"

# Training options (fer_utils.training and the CLI share them).
PRECISIONS: tuple[str, ...] = ("auto", "float32", "mixed_bfloat16")
SCHEDULES: tuple[str, ...] = ("plateau", "cosine")
PROTOCOLS = {"clean": "val", "paper": "test_all"}
"""Validation split per protocol: clean = PublicTest only; paper = all 7,178 test images (as the paper did)."""
