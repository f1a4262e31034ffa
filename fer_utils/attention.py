"""Attention blocks beyond the paper's SE block, compared in notebook 09: ECA, CBAM's channel and spatial attention.

Each is a function like `models.se_block`: it takes a feature map (N, H, W, C) and returns one of the same shape, its
layers named `{name}_...`, so that the gates and maps can be read out by layer name. Keras layers only (no Lambda, no
custom layer), so a model holding them runs on any Keras backend and loads in safe mode with nothing registered.
`models.build_cnn(attention=...)` places them (config.ATTENTIONS). This module imports nothing from `models`.
"""

from __future__ import annotations

import math

from keras import layers

from .config import ECA_B, ECA_GAMMA, SE_RATIO, SPATIAL_KERNEL

# ---- notebooks/09_attention_compared.ipynb, cells `#@save attention` (edit there; python -m fer_utils.export) ----
def eca_kernel_size(channels: int, gamma: int = ECA_GAMMA, b: int = ECA_B) -> int:
    """ECA's kernel size for C channels (Wang et al., 2020): t = floor(|(log2 C + b) / gamma|), made odd."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


def eca_block(x, kernel_size: int | None = None, name: str = "eca"):
    """Efficient Channel Attention (Wang et al., 2020): SE's channel gates from a 1-D convolution across the channels.

    Args:
        x: a feature map (N, H, W, C).
        kernel_size: how many neighbouring channel means each gate sees (odd); None: `eca_kernel_size(C)`.
        name: prefix of the block's layer names (`{name}_squeeze`, `_column`, `_conv`, `_gate`, `_reshape`, `_scale`).

    Returns:
        x with channel c multiplied by its gate s_c in (0, 1), same shape as x.
    """
    channels = x.shape[-1]
    k = kernel_size or eca_kernel_size(channels)
    s = layers.GlobalAveragePooling2D(name=f"{name}_squeeze")(x)  # z_c: mean of channel c over H x W, as in SE
    s = layers.Reshape((channels, 1), name=f"{name}_column")(s)  # the C means as a sequence of length C
    s = layers.Conv1D(1, k, padding="same", use_bias=False, name=f"{name}_conv")(s)  # k weights shared by all gates
    s = layers.Activation("sigmoid", name=f"{name}_gate")(s)  # s_c = sigma(sum_j w_j z_{c+j-(k+1)/2})
    s = layers.Reshape((1, 1, channels), name=f"{name}_reshape")(s)  # (N, C, 1) -> (N, 1, 1, C), to broadcast
    return layers.Multiply(name=f"{name}_scale")([x, s])  # x~_c = s_c * u_c


def channel_attention(x, ratio: int = SE_RATIO, name: str = "channel"):
    """CBAM's channel attention (Woo et al., 2018): SE's gates from the channel means and maxima, one shared MLP.

    Args:
        x: a feature map (N, H, W, C).
        ratio: the reduction ratio r; the MLP's hidden layer has max(C // r, 1) units.
        name: prefix of the layer names (`{name}_avg_pool`, `_max_pool`, `_reduce`, `_expand`, `_add`, `_gate`,
            `_reshape`, `_scale`); `_reduce` and `_expand` are called twice, so read the gates at `{name}_gate`.

    Returns:
        x with channel c multiplied by its gate in (0, 1), same shape as x.
    """
    channels = x.shape[-1]
    reduce = layers.Dense(max(channels // ratio, 1), activation="relu", name=f"{name}_reduce")  # W0, b0, then delta
    expand = layers.Dense(channels, name=f"{name}_expand")  # W1, b1: no sigmoid yet, the two paths are added first
    mean = expand(reduce(layers.GlobalAveragePooling2D(name=f"{name}_avg_pool")(x)))  # MLP(AvgPool(U))
    peak = expand(reduce(layers.GlobalMaxPooling2D(name=f"{name}_max_pool")(x)))  # MLP(MaxPool(U)), same weights
    s = layers.Add(name=f"{name}_add")([mean, peak])
    s = layers.Activation("sigmoid", name=f"{name}_gate")(s)  # M_c in (0, 1)^C
    s = layers.Reshape((1, 1, channels), name=f"{name}_reshape")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def spatial_attention(x, kernel_size: int = SPATIAL_KERNEL, name: str = "spatial"):
    """CBAM's spatial attention (Woo et al., 2018): one weight per position, from the channel mean and max maps.

    Args:
        x: a feature map (N, H, W, C) with known H and W.
        kernel_size: the convolution's size k (CBAM: 7); it has 2 k^2 weights and one bias.
        name: prefix of the layer names (`{name}_flatten`, `_mean`, `_max`, `_pooled`, `_maps`, `_conv` (the map
            before the sigmoid), `_map` (the map M_s, (N, H, W, 1)), `_scale`).

    Returns:
        x with every position multiplied by its weight in (0, 1), same shape as x.
    """
    height, width, channels = x.shape[1:]
    flat = layers.Reshape((height * width, channels), name=f"{name}_flatten")(x)  # one row of C values per position
    # channels_first: the pooling runs along the last axis, across the C channels of each position
    mean = layers.GlobalAveragePooling1D(data_format="channels_first", keepdims=True, name=f"{name}_mean")(flat)
    peak = layers.GlobalMaxPooling1D(data_format="channels_first", keepdims=True, name=f"{name}_max")(flat)
    maps = layers.Concatenate(name=f"{name}_pooled")([mean, peak])  # (N, HW, 2)
    maps = layers.Reshape((height, width, 2), name=f"{name}_maps")(maps)  # [AvgPool_c(U); MaxPool_c(U)]
    a = layers.Conv2D(1, kernel_size, padding="same", name=f"{name}_conv")(maps)  # f^{k x k}
    a = layers.Activation("sigmoid", name=f"{name}_map")(a)  # M_s(i, j) in (0, 1)
    return layers.Multiply(name=f"{name}_scale")([x, a])  # broadcast over the C channels


def cbam_block(x, ratio: int = SE_RATIO, kernel_size: int = SPATIAL_KERNEL, name: str = "cbam"):
    """CBAM (Woo et al., 2018): `channel_attention`, then `spatial_attention` on its output.

    Args:
        x: a feature map (N, H, W, C).
        ratio: the channel attention's reduction ratio r.
        kernel_size: the spatial attention's convolution size k.
        name: prefix of the layer names: `{name}_channel_...` and `{name}_spatial_...`.

    Returns:
        x reweighted per channel and then per position, same shape as x.
    """
    x = channel_attention(x, ratio, name=f"{name}_channel")
    return spatial_attention(x, kernel_size, name=f"{name}_spatial")
# ---- end of notebooks/09_attention_compared.ipynb ----
