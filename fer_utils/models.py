"""The paper's two models: the 3-block baseline CNN and the same CNN with SE blocks, and the paper's compile.

The builders are written in the notebooks, where they are explained (02: preprocessing, conv block, CNN, compile;
03: the SE block; 04: the SE-CNN), and exported here by `python -m fer_utils.export`: edit them there. `build_cnn`'s
`attention` option puts the blocks of `fer_utils.attention` (notebook 09) in the same places instead. Written with
`keras` layers only (no `tf.*`, no Lambda), so they run on any Keras backend and a saved `.keras` file loads with
`keras.models.load_model` in safe mode.
"""

from __future__ import annotations

import keras
from keras import layers

from .attention import cbam_block, eca_block, spatial_attention
from .augment import augmentation
from .config import CLASSES, DENSE_DROPOUT, DENSE_UNITS, FILTERS, IMAGE_SIZE, LEARNING_RATE, SE_RATIO, SHIFT_RANGE
from .config import ATTENTIONS, LABEL_SMOOTHING, WEIGHT_DECAY


# ---- notebooks/02_baseline_cnn.ipynb, cells `#@save models` (edit there; python -m fer_utils.export) ----
def preprocessing(x, shift: float = SHIFT_RANGE, flip: bool = False, augment: tuple[str, ...] = ()):
    """The paper's ImageDataGenerator as layers: random shifts (training only), then rescale 1/255.

    Args:
        x: the model's input tensor, raw uint8 pixels (N, 48, 48, 1).
        shift: the largest shift, as a fraction of width and height (0 turns it off).
        flip: also mirror faces left-right at random (training only), beyond the paper.
        augment: further augmentations after the shift, beyond the paper (training only; notebook 08 and
            `fer_utils.augment.AUGMENTATIONS`): "geometric", "photometric", "degrade", "erase".

    Returns:
        The preprocessed tensor, pixels in [0, 1].
    """
    if flip:
        x = layers.RandomFlip("horizontal", name="augment_flip")(x)
    if shift:
        x = layers.RandomTranslation(shift, shift, fill_mode="nearest", name="augment_shift")(x)
    if augment:
        x = augmentation(x, augment)
    return layers.Rescaling(1.0 / 255, name="rescale")(x)


def conv_block(x, filters: int, block: int, se_ratio: int | None = None, dropout: float = 0.0,
               batch_norm: bool = False, attention: str | None = None):
    """One block of the paper's CNN: two 3x3 convolutions with ReLU, then 2x2 max-pooling.

    Args:
        x: the block's input tensor (N, H, W, C_in).
        filters: output channels of both convolutions.
        block: the block's number, used in layer names (`block1_conv1`, ...).
        se_ratio: with a reduction ratio, an SE block before the pooling (notebooks 03 and 04); None: none. With
            `attention`, the reduction ratio r of its SE or CBAM blocks (None: config.SE_RATIO).
        dropout: dropout rate after the pooling (0: none).
        batch_norm: conv -> batch norm -> ReLU instead of conv with ReLU (not in the paper).
        attention: an attention block beyond the paper's placement (notebook 09, config.ATTENTIONS): "se" (before
            the pooling, as se_ratio alone), "se_every" (SE after each convolution, `block1_conv1_se_...`), "eca",
            "cbam" or "spatial" (`fer_utils.attention`, before the pooling: `block1_eca_...`); None: as se_ratio says.

    Returns:
        The block's output tensor (N, H/2, W/2, filters).
    """
    if attention is not None and attention not in ATTENTIONS:
        raise ValueError(f"unknown attention {attention!r}: expected None or one of {', '.join(ATTENTIONS)}")
    attention = attention or ("se" if se_ratio else None)
    ratio = se_ratio or SE_RATIO
    for i in (1, 2):
        name = f"block{block}_conv{i}"
        if batch_norm:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=name)(x)
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
        else:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer="he_normal",
                              name=name)(x)
        if attention == "se_every":
            x = se_block(x, ratio, name=f"{name}_se")
    if attention == "se":
        x = se_block(x, ratio, name=f"block{block}_se")
    elif attention == "eca":
        x = eca_block(x, name=f"block{block}_eca")
    elif attention == "cbam":
        x = cbam_block(x, ratio, name=f"block{block}_cbam")
    elif attention == "spatial":
        x = spatial_attention(x, name=f"block{block}_spatial")
    x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"block{block}_dropout")(x)
    return x


def build_cnn(se_ratio: int | None = None, filters: tuple[int, ...] = FILTERS, dense_units: int = DENSE_UNITS,
              block_dropout: float = 0.0, dense_dropout: float = DENSE_DROPOUT, batch_norm: bool = False,
              shift: float = SHIFT_RANGE, flip: bool = False, augment: tuple[str, ...] = (),
              preprocess: bool = True, attention: str | None = None, name: str | None = None) -> keras.Model:
    """The paper's CNN on raw uint8 48x48x1 faces: preprocessing, conv blocks, flatten, dense, softmax over 7.

    Args:
        se_ratio: None for the paper's original CNN; a reduction ratio r for the SE-CNN (an SE block per block).
        filters: output channels of each conv block (the paper gives none; one block per entry).
        dense_units: units of the dense layer (the paper gives none).
        block_dropout: dropout after each block's pooling (0: none).
        dense_dropout: dropout after the dense layer (our choice: the paper names none).
        batch_norm: batch norm after each conv, before its ReLU (the paper describes none).
        shift: largest random shift in training (the paper's width/height_shift_range).
        flip: random left-right mirroring in training (not in the paper).
        augment: further training-only augmentations (not in the paper; `preprocessing`, notebook 08).
        preprocess: False leaves out the shift and rescale layers, for inputs prepared outside the model.
        attention: another attention block in every conv block (`conv_block`; notebook 09): "se", "se_every", "eca",
            "cbam" or "spatial", with se_ratio as its reduction ratio r where it has one (None: config.SE_RATIO).
        name: the model's name (default "baseline_cnn", "se_cnn", or "<attention>_cnn" such as "eca_cnn").

    Returns:
        An uncompiled keras.Model from (N, 48, 48, 1) pixels to (N, 7) class probabilities.
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    x = preprocessing(inputs, shift, flip, augment) if preprocess else inputs
    for block, n in enumerate(filters, start=1):
        x = conv_block(x, n, block, se_ratio, block_dropout, batch_norm, attention=attention)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal", name="dense")(x)
    if dense_dropout:
        x = layers.Dropout(dense_dropout, name="dense_dropout")(x)
    # float32 softmax keeps probabilities exact under a mixed-precision policy.
    outputs = layers.Dense(len(CLASSES), activation="softmax", dtype="float32", name="predictions")(x)
    kind = attention or ("se" if se_ratio else "baseline")
    return keras.Model(inputs, outputs, name=name or f"{kind}_cnn")


def build_baseline_cnn(**kwargs) -> keras.Model:
    """The paper's original CNN (Table 1, first row); `kwargs` as for `build_cnn`."""
    return build_cnn(se_ratio=None, **kwargs)


def compile_model(model: keras.Model, learning_rate=LEARNING_RATE, label_smoothing: float = LABEL_SMOOTHING,
                  weight_decay: float = WEIGHT_DECAY, **compile_kwargs) -> keras.Model:
    """Compile `model` with the paper's recipe: Adam, categorical cross-entropy, accuracy.

    Args:
        model: a model from `build_cnn`.
        learning_rate: Adam's learning rate, a number or a schedule (the paper: 0.002).
        label_smoothing: mix each one-hot target with the uniform distribution by this much (the paper: 0; notebook 08).
        weight_decay: > 0 uses AdamW, which shrinks every weight by `learning_rate * weight_decay` a step (notebook 08).
        **compile_kwargs: passed to `model.compile` as they are (e.g. `jit_compile`).

    Returns:
        The same model, compiled.
    """
    optimizer = (keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(learning_rate))
    loss = (keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing) if label_smoothing
            else "categorical_crossentropy")
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], **compile_kwargs)
    return model
# ---- end of notebooks/02_baseline_cnn.ipynb ----


# ---- notebooks/03_se_block_derivation.ipynb, cells `#@save models` (edit there; python -m fer_utils.export) ----
def se_block(x, ratio: int = SE_RATIO, name: str = "se"):
    """Squeeze-and-Excitation (Hu et al., 2018): reweight the C channels of `x` by learned gates in (0, 1).

    Args:
        x: a feature map (N, H, W, C).
        ratio: the reduction ratio r; the hidden layer has max(C // r, 1) units.
        name: prefix of the block's layer names (`{name}_squeeze`, `_reduce`, `_expand`, `_reshape`, `_scale`).

    Returns:
        x with channel c multiplied by its gate s_c, same shape as x.
    """
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(name=f"{name}_squeeze")(x)  # z_c: mean of channel c over H x W
    s = layers.Dense(max(channels // ratio, 1), activation="relu", name=f"{name}_reduce")(s)  # delta(W1 z + b1)
    s = layers.Dense(channels, activation="sigmoid", name=f"{name}_expand")(s)  # s = sigma(W2 . + b2)
    s = layers.Reshape((1, 1, channels), name=f"{name}_reshape")(s)  # (N, C) -> (N, 1, 1, C), to broadcast
    return layers.Multiply(name=f"{name}_scale")([x, s])  # x~_c = s_c * u_c
# ---- end of notebooks/03_se_block_derivation.ipynb ----


# ---- notebooks/04_se_cnn_training.ipynb, cells `#@save models` (edit there; python -m fer_utils.export) ----
def build_se_cnn(se_ratio: int = SE_RATIO, **kwargs) -> keras.Model:
    """The paper's CNN with an SE block before each max-pooling (Table 1, second row).

    Args:
        se_ratio: the SE blocks' reduction ratio r (Hu et al.'s default 16; the paper names none).
        **kwargs: as for `build_cnn` (filters, dense_units, batch_norm, flip, ...).

    Returns:
        An uncompiled keras.Model, layers named `block{b}_se_squeeze`, ..., `block{b}_se_scale`.
    """
    return build_cnn(se_ratio=se_ratio, **kwargs)
# ---- end of notebooks/04_se_cnn_training.ipynb ----

MODEL_BUILDERS = {"baseline": build_baseline_cnn, "se": build_se_cnn}


def build_model(kind: str, **kwargs) -> keras.Model:
    """Build a model by kind.

    Args:
        kind: "baseline" or "se" (the keys of `config.MODELS`).
        **kwargs: as for `build_cnn` (and `se_ratio` for "se").

    Returns:
        An uncompiled keras.Model.
    """
    if kind not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {kind!r}: expected one of {sorted(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[kind](**kwargs)
