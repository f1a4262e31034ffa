"""fer_utils.attention (notebook 09) and build_cnn's `attention` option: ECA, CBAM's channel and spatial attention,
CBAM, SE after every convolution; and the paper's two models, which must not change.

Parameter counts are written out here from the papers' formulas (Wang et al., 2020; Woo et al., 2018), not derived
from fer_utils; the NumPy references recompute each block from its definition.
"""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from fer_utils.attention import cbam_block, channel_attention, eca_block, eca_kernel_size, spatial_attention
from fer_utils.config import ATTENTIONS, PAPER_CONFIG, SE_RATIO
from fer_utils.explain import float32_copy
from fer_utils.models import build_cnn, build_model

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(filters=(4, 8, 16), dense_units=8)
SHAPES = [(6, 6, 16), (12, 10, 32), (5, 7, 64)]


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def block_model(block, shape, **kwargs) -> keras.Model:
    inputs = keras.Input(shape)
    return keras.Model(inputs, block(inputs, name="t", **kwargs))


def outputs(model: keras.Model, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    out = probe(x)
    return [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def random_map(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, *shape)).astype(np.float32)


def se_formula(c: int, r: int) -> int:
    """SE's (and CBAM's channel attention's) parameters: C -> C//r (weights and biases) -> C (weights and biases)."""
    h = max(c // r, 1)
    return c * h + h + h * c + c


# ---- the blocks


@pytest.mark.parametrize("channels, k", [(4, 1), (8, 3), (16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5),
                                         (1024, 5), (2048, 7)])
def test_eca_kernel_size_is_the_papers_odd_rounding_of_log2_c_plus_1_over_2(channels, k):
    assert eca_kernel_size(channels) == k


@pytest.mark.parametrize("block", [eca_block, channel_attention, spatial_attention, cbam_block],
                         ids=lambda b: b.__name__)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_block_returns_a_map_of_its_inputs_shape(block, shape):
    model = block_model(block, shape)
    assert model.output.shape[1:] == shape
    assert keras.ops.convert_to_numpy(model(random_map(shape))).shape == (3, *shape)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("ratio", [4, 8, 16])
def test_parameter_counts_are_the_formulas(shape, ratio):
    c = shape[-1]
    assert block_model(eca_block, shape).count_params() == eca_kernel_size(c)  # k weights, no bias
    assert block_model(eca_block, shape, kernel_size=7).count_params() == 7
    assert block_model(channel_attention, shape, ratio=ratio).count_params() == se_formula(c, ratio)  # MLP shared
    assert block_model(spatial_attention, shape).count_params() == 2 * 7 * 7 + 1  # whatever C is
    assert block_model(spatial_attention, shape, kernel_size=3).count_params() == 2 * 3 * 3 + 1
    assert block_model(cbam_block, shape, ratio=ratio).count_params() == se_formula(c, ratio) + 99


def test_gates_and_maps_lie_strictly_between_0_and_1():
    shape = (12, 10, 32)
    x = random_map(shape, seed=1)
    eca_gates, = outputs(block_model(eca_block, shape), ["t_gate"], x)
    channel_gates, = outputs(block_model(channel_attention, shape), ["t_gate"], x)
    spatial_map, = outputs(block_model(spatial_attention, shape), ["t_map"], x)
    cbam = outputs(block_model(cbam_block, shape), ["t_channel_gate", "t_spatial_map"], x)
    assert eca_gates.shape == (3, 32, 1) and channel_gates.shape == (3, 32) and spatial_map.shape == (3, 12, 10, 1)
    for values in (eca_gates, channel_gates, spatial_map, *cbam):
        assert ((values > 0) & (values < 1)).all()
        assert values.std() > 0  # not a constant: the gates depend on the map


def test_eca_matches_a_zero_padded_convolution_across_the_channels():
    shape, k = (5, 6, 16), 5
    model = block_model(eca_block, shape, kernel_size=k)
    w = np.random.default_rng(2).normal(size=k)
    model.get_layer("t_conv").set_weights([w.reshape(k, 1, 1)])
    x = random_map(shape, seed=3)
    z = x.astype(np.float64).mean(axis=(1, 2))
    padded = np.pad(z, ((0, 0), (2, 2)))
    s = sigmoid(np.stack([padded[:, c:c + k] @ w for c in range(16)], axis=1))  # gate c sees channels c-2..c+2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), x * s[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_cbam_channel_attention_adds_the_shared_mlp_of_the_mean_and_of_the_max():
    shape, r = (5, 6, 32), 8
    model = block_model(channel_attention, shape, ratio=r)
    rng = np.random.default_rng(4)
    w0, b0, w1, b1 = rng.normal(size=(32, 4)), rng.normal(size=4), rng.normal(size=(4, 32)), rng.normal(size=32)
    model.get_layer("t_reduce").set_weights([w0, b0])
    model.get_layer("t_expand").set_weights([w1, b1])
    x = random_map(shape, seed=5)

    def mlp(v):
        return np.maximum(v @ w0 + b0, 0) @ w1 + b1

    s = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), x * s[:, None, None, :], rtol=1e-4, atol=1e-5)


def test_spatial_attention_convolves_the_channel_mean_and_max_maps():
    shape, k = (9, 8, 16), 3
    model = block_model(spatial_attention, shape, kernel_size=k)
    rng = np.random.default_rng(6)
    kernel, bias = rng.normal(size=(k, k, 2, 1)), rng.normal(size=1)
    model.get_layer("t_conv").set_weights([kernel, bias])
    x = random_map(shape, seed=7)
    pooled = np.pad(np.stack([x.mean(-1), x.max(-1)], axis=-1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    logits = bias[0] + sum((pooled[:, i:i + 9, j:j + 8, :] * kernel[i, j, :, 0]).sum(-1)
                           for i in range(k) for j in range(k))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), x * sigmoid(logits)[..., None], rtol=1e-4,
                               atol=1e-5)


def test_the_spatial_map_is_largest_where_the_channels_fire():
    """A map that is zero except for a bright patch in a few channels; with a positive kernel that falls off from its
    centre, the response (before the sigmoid) peaks at the patch's centre and is zero far from it. Pooling over
    positions instead of channels, or a map that ignored its input, would put the peak elsewhere."""
    shape = (16, 16, 32)
    model = block_model(spatial_attention, shape)
    offsets = np.arange(7) - 3
    bump = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / 4.0)
    model.get_layer("t_conv").set_weights([np.repeat(bump[:, :, None, None], 2, axis=2) * 0.1, np.zeros(1)])
    x = np.zeros((1, *shape), dtype=np.float32)
    x[0, 10:13, 3:6, :4] = 8.0  # rows 10-12, columns 3-5, four of 32 channels
    response, spatial_map = outputs(model, ["t_conv", "t_map"], x)
    peak = np.unravel_index(response[0, ..., 0].argmax(), shape[:2])
    assert peak == (11, 4)  # the patch's centre
    assert response[0, 0, 15, 0] == 0 and spatial_map[0, 0, 15, 0] == pytest.approx(0.5)  # far from it: sigmoid(0)
    assert spatial_map[0, 11, 4, 0] > 0.99


def test_cbam_is_channel_attention_then_spatial_attention():
    model = block_model(cbam_block, (6, 6, 16))
    spatial_in = model.get_layer("t_spatial_flatten").input
    assert spatial_in is model.get_layer("t_channel_scale").output
    assert model.output is model.get_layer("t_spatial_scale").output


def test_attention_does_not_import_models():
    """models imports attention; the reverse would be an import cycle."""
    tree = ast.parse((ROOT / "fer_utils" / "attention.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not {m for m in imported if m and m.split(".")[-1] == "models"}


# ---- the CNN with attention


@pytest.fixture(scope="module")
def tiny_models():
    return {kind: build_cnn(se_ratio=4 if kind else None, attention=kind, **TINY) for kind in (None, *ATTENTIONS)}


@pytest.mark.parametrize("kind, layers", [
    ("se", [f"block{b}_se_scale" for b in (1, 2, 3)]),
    ("se_every", [f"block{b}_conv{i}_se_scale" for b in (1, 2, 3) for i in (1, 2)]),
    ("eca", [f"block{b}_eca_scale" for b in (1, 2, 3)]),
    ("cbam", [f"block{b}_cbam_{part}_scale" for b in (1, 2, 3) for part in ("channel", "spatial")]),
    ("spatial", [f"block{b}_spatial_scale" for b in (1, 2, 3)]),
])
def test_each_attention_puts_its_blocks_where_the_docs_say(tiny_models, kind, layers):
    model = tiny_models[kind]
    assert sorted(layer.name for layer in model.layers if layer.name.endswith("_scale")) == sorted(layers)
    for b in (1, 2, 3):  # the last attention of each block feeds its max-pooling
        pool = model.get_layer(f"block{b}_pool")
        assert pool.input is model.get_layer(sorted(n for n in layers if n.startswith(f"block{b}_"))[-1]).output
    assert model.name == f"{kind}_cnn"


def test_se_every_follows_each_convolution_and_uses_the_ratio(tiny_models):
    model = tiny_models["se_every"]
    for b, c in zip((1, 2, 3), TINY["filters"]):
        for i in (1, 2):
            squeeze = model.get_layer(f"block{b}_conv{i}_se_squeeze")
            assert squeeze.input is model.get_layer(f"block{b}_conv{i}").output  # no batch norm: the conv's output
            assert model.get_layer(f"block{b}_conv{i}_se_reduce").units == max(c // 4, 1)


@pytest.mark.parametrize("kind, per_block", [
    ("se", lambda c: se_formula(c, 4)), ("se_every", lambda c: 2 * se_formula(c, 4)),
    ("eca", lambda c: {4: 1, 8: 3, 16: 3, 32: 3, 64: 3, 128: 5}[c]), ("cbam", lambda c: se_formula(c, 4) + 99),
    ("spatial", lambda c: 99)])
def test_each_attention_adds_its_formulas_parameters_to_the_cnn(tiny_models, kind, per_block):
    added = tiny_models[kind].count_params() - tiny_models[None].count_params()
    assert added == sum(per_block(c) for c in TINY["filters"])


def test_the_reduction_ratio_defaults_to_se_ratio_when_attention_is_named():
    assert build_cnn(attention="cbam", **TINY).get_layer("block3_cbam_channel_reduce").units == max(16 // SE_RATIO, 1)
    assert build_cnn(attention="se", **TINY).count_params() == build_cnn(se_ratio=SE_RATIO, **TINY).count_params()


def test_an_unknown_attention_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="unknown attention 'bam'.*se_every.*spatial"):
        build_cnn(attention="bam", **TINY)


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_a_model_with_attention_saves_and_loads_in_safe_mode_with_identical_predictions(tiny_models, kind, tmp_path):
    model = tiny_models[kind]
    batch = np.random.default_rng(8).integers(0, 256, size=(4, 48, 48, 1)).astype(np.uint8)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(batch, verbose=0), model.predict(batch, verbose=0))
    config = json.dumps(model.get_config())
    assert '"Lambda"' not in config
    modules = {layer.__class__.__module__.split(".")[0] for layer in model.layers}
    assert modules == {"keras"}  # stock layers only: nothing to register before loading


@pytest.mark.parametrize("kind", ["cbam", "eca"])
def test_the_float32_copy_of_an_attention_model_predicts_the_same(tiny_models, kind):
    """explain.float32_copy (Grad-CAM, benchmarks/robustness.py) clones the model; CBAM shares its MLP's layers."""
    model = tiny_models[kind]
    batch = np.random.default_rng(9).integers(0, 256, size=(4, 48, 48, 1)).astype(np.uint8)
    np.testing.assert_allclose(float32_copy(model).predict(batch, verbose=0), model.predict(batch, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_attention_models_built_and_saved_under_jax_predict_the_same_under_tensorflow(tmp_path):
    """The GPU path runs Keras on JAX: every attention builds there, and its saved file loads here (TensorFlow) with
    the same predictions."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    batch = np.random.default_rng(10).integers(0, 256, size=(4, 48, 48, 1)).astype(np.uint8)
    np.save(tmp_path / "batch.npy", batch)
    script = (
        "import sys, numpy as np, keras\n"
        "from fer_utils.config import ATTENTIONS\n"
        "from fer_utils.models import build_cnn\n"
        "assert keras.backend.backend() == 'jax'\n"
        "x = np.load(sys.argv[1] + '/batch.npy')\n"
        "for kind in ATTENTIONS:\n"
        "    m = build_cnn(se_ratio=4, attention=kind, filters=(4, 8, 16), dense_units=8)\n"
        "    m.save(f'{sys.argv[1]}/{kind}.keras')\n"
        "    np.save(f'{sys.argv[1]}/{kind}.npy', m.predict(x, verbose=0))\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for kind in ATTENTIONS:
        loaded = keras.models.load_model(tmp_path / f"{kind}.keras")
        np.testing.assert_allclose(loaded.predict(batch, verbose=0), np.load(tmp_path / f"{kind}.npy"), rtol=1e-4,
                                   atol=1e-5)


# ---- the paper's models are unchanged


def test_attention_se_is_the_papers_se_cnn_layer_for_layer():
    paper = build_model("se", **PAPER_CONFIG)
    named = build_cnn(attention="se", **PAPER_CONFIG)
    assert [layer.name for layer in named.layers] == [layer.name for layer in paper.layers]
    assert named.count_params() == paper.count_params() and named.name == paper.name == "se_cnn"
    baseline = build_model("baseline", **PAPER_CONFIG)
    assert baseline.name == "baseline_cnn"
    assert not [layer.name for layer in baseline.layers if layer.name.endswith("_scale")]


def _published_layers(model_file: Path) -> list[str]:
    """The layer names in a saved .keras file's config (its weights are not read)."""
    with zipfile.ZipFile(model_file) as z:
        return [layer["config"]["name"] for layer in json.loads(z.read("config.json"))["config"]["layers"]]


@pytest.mark.parametrize("folder", ["reports/baseline", "reports/se", "reports/v1/baseline", "reports/v1/se"])
def test_the_published_models_are_rebuilt_identically(folder):
    run = ROOT / folder
    if not (run / "model.keras").is_file():
        pytest.skip(f"{folder} is not in this checkout")
    info = json.loads((run / "run_info.json").read_text())
    params = info["params"]
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()
               if k in ("filters", "dense_units", "dense_dropout", "batch_norm", "flip", "augment", "se_ratio")}
    if params["model"] == "baseline":
        options.pop("se_ratio", None)
    rebuilt = build_model(params["model"], **options)
    assert rebuilt.count_params() == info["parameters"]
    assert [layer.name for layer in rebuilt.layers] == _published_layers(run / "model.keras")


# ---- notebook 09


def test_notebook_09_solves_every_exercise():
    cells = json.loads((ROOT / "notebooks" / "09_attention_compared.ipynb").read_text())["cells"]
    text = ["".join(c["source"]) for c in cells]
    asked = next(t for t in text if "### Exercises" in t).split("### Exercises", 1)[1]
    n = len([line for line in asked.splitlines() if line[:3] in {f"{i}. " for i in range(1, 10)}])
    solved = [i for i, t in enumerate(text) if t.startswith("**Exercise ")]
    assert n >= 3 and len(solved) == n
    assert all(cells[i + 1]["cell_type"] == "code" for i in solved)  # each worked solution is code that runs
