"""The paper's two models: the 3-block baseline CNN and the same CNN with SE blocks.

Written with `keras` layers only (no `tf.*`, no Lambda), so they run on any Keras backend
and a saved `.keras` file loads with `keras.models.load_model` in safe mode.
"""

from __future__ import annotations

import keras
from keras import layers

from .config import CLASSES, IMAGE_SIZE, SE_RATIO, SHIFT_RANGE

FILTERS = (32, 64, 128)
DENSE_UNITS = 256


def preprocessing(x, shift: float = SHIFT_RANGE, flip: bool = False):
    """The paper's ImageDataGenerator as layers: width/height shift (training only), then rescale 1/255.

    `flip` adds a random left-right mirror (training only), an augmentation beyond the paper's.
    """
    if flip:
        x = layers.RandomFlip("horizontal", name="augment_flip")(x)
    if shift:
        x = layers.RandomTranslation(shift, shift, fill_mode="nearest", name="augment_shift")(x)
    return layers.Rescaling(1.0 / 255, name="rescale")(x)


def se_block(x, ratio: int = SE_RATIO, name: str = "se"):
    """Squeeze-and-Excitation (Hu et al., 2018): reweight the C channels of `x` by learned gates in (0, 1).

    squeeze z = mean over H, W; excite s = sigmoid(W2 relu(W1 z)) with W1: C -> C/r; scale x * s.
    """
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(name=f"{name}_squeeze")(x)
    s = layers.Dense(max(channels // ratio, 1), activation="relu", name=f"{name}_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", name=f"{name}_expand")(s)
    s = layers.Reshape((1, 1, channels), name=f"{name}_reshape")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def conv_block(x, filters: int, block: int, se_ratio: int | None = None, dropout: float = 0.0,
               batch_norm: bool = True):
    """Two 3x3 conv (+ batch norm) + ReLU, an optional SE block, then 2x2 max-pooling (and optional dropout)."""
    for i in (1, 2):
        name = f"block{block}_conv{i}"
        if batch_norm:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=name)(x)
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
        else:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer="he_normal",
                              name=name)(x)
    if se_ratio:
        x = se_block(x, se_ratio, name=f"block{block}_se")
    x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"block{block}_dropout")(x)
    return x


def build_cnn(se_ratio: int | None = None, filters: tuple[int, ...] = FILTERS, dense_units: int = DENSE_UNITS,
              block_dropout: float = 0.0, dense_dropout: float = 0.5, batch_norm: bool = False,
              shift: float = SHIFT_RANGE, flip: bool = False, preprocess: bool = True,
              name: str | None = None) -> keras.Model:
    """The paper's CNN on raw uint8 48x48x1 images; with `se_ratio`, an SE block before each pooling.

    Choices against the paper's text (Section 2.2.3, after Chahed's Kaggle model): three blocks of
    two 3x3 conv + ReLU and max-pooling, flatten, one dense layer, softmax over 7 - as written.
    The paper gives no widths: we double the filters per block (32, 64, 128, VGG-style) and use a
    256-unit dense layer, which keeps a saved model (with its Adam state) under 25 MB and a CPU
    epoch short. It mentions neither dropout nor batch norm. We put dropout 0.5 after the dense
    layer (`dense_dropout`), the usual guard for the one large layer; `block_dropout` adds dropout
    after each block. Batch norm (`batch_norm=True`: conv -> BN -> ReLU) is off by default: the paper
    does not describe it and it costs CPU time (the quick profile turns it on). Convs use He
    initialisation (suited to ReLU) and 'same' padding, so three poolings take 48 -> 24 -> 12 -> 6.
    `preprocess=False` leaves out the shift and rescale layers, for inputs already prepared outside
    (the paper's ImageDataGenerator); `flip=True` adds random horizontal flips, which the paper does
    not use.
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    x = preprocessing(inputs, shift, flip) if preprocess else inputs
    for block, n in enumerate(filters, start=1):
        x = conv_block(x, n, block, se_ratio, block_dropout, batch_norm)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal", name="dense")(x)
    if dense_dropout:
        x = layers.Dropout(dense_dropout, name="dense_dropout")(x)
    # float32 softmax keeps probabilities exact under a mixed-precision policy.
    outputs = layers.Dense(len(CLASSES), activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or ("se_cnn" if se_ratio else "baseline_cnn"))


def build_baseline_cnn(**kwargs) -> keras.Model:
    """The paper's original CNN (Table 1, first row)."""
    return build_cnn(se_ratio=None, **kwargs)


def build_se_cnn(se_ratio: int = SE_RATIO, **kwargs) -> keras.Model:
    """The paper's CNN with an SE block before each max-pooling (Table 1, second row)."""
    return build_cnn(se_ratio=se_ratio, **kwargs)


MODEL_BUILDERS = {"baseline": build_baseline_cnn, "se": build_se_cnn}


def build_model(kind: str, **kwargs) -> keras.Model:
    """Build 'baseline' or 'se' by name."""
    if kind not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {kind!r}: expected one of {sorted(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[kind](**kwargs)
