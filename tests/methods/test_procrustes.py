"""Procrustes / least squares and its gMLP mapper, on synthetic data whose right answer is known."""

import json

import numpy as np
import pytest
import torch

from mmr.encoders import l2_normalise
from mmr.encoders.base import ImageFeatures
from mmr.methods.gmlp import GatedMapper, GmlpConfig, gated_mapper
from mmr.methods.procrustes import (
    AffineSide,
    LinearMapper,
    MappedSpaceModel,
    MapVariant,
    PairedFeatures,
    PcaBasis,
    fit_linear_mapper,
    least_squares_map,
    load_mapper,
    orthogonal_map,
    save_mapper,
)
from mmr.training.common import info_nce


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return q


def test_orthogonal_map_is_orthogonal_and_recovers_a_planted_rotation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 12))
    rotation = random_rotation(12, rng)
    y = x @ rotation + 0.05 * rng.standard_normal((400, 12))
    w = orthogonal_map(x, y)
    np.testing.assert_allclose(w.T @ w, np.eye(12), atol=1e-5)
    np.testing.assert_allclose(w, rotation, atol=0.02)
    # an unrelated target gives a rotation too, but not the planted one
    assert np.abs(orthogonal_map(x, rng.standard_normal((400, 12))) - rotation).max() > 0.3
    with pytest.raises(ValueError, match="equal dimensions"):
        orthogonal_map(x, y[:, :5])


def test_least_squares_recovers_a_planted_map_from_noisy_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 20))
    planted = rng.standard_normal((20, 8))
    y = x @ planted + 0.1 * rng.standard_normal((600, 8))
    w = least_squares_map(x, y)
    assert np.abs(w - planted).max() < 0.05
    np.testing.assert_allclose(w, np.linalg.pinv(x) @ y, atol=1e-4)
    # the ridge shrinks the map towards zero, more with a larger ridge
    norms = [np.linalg.norm(least_squares_map(x, y, ridge)) for ridge in (0.0, 1.0, 10.0)]
    assert norms[0] > norms[1] > norms[2]


def test_both_directions_round_trip():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 10))
    rotation = random_rotation(10, rng)
    y = x @ rotation + 0.01 * rng.standard_normal((500, 10))
    np.testing.assert_allclose(orthogonal_map(x, y) @ orthogonal_map(y, x), np.eye(10), atol=1e-5)
    np.testing.assert_allclose(least_squares_map(x, y) @ least_squares_map(y, x), np.eye(10), atol=1e-3)


def synthetic_pairs(n: int, rng: np.random.Generator, text_dim: int = 8, image_dim: int = 24):
    """Texts are noisy views of a latent concept; images are a planted non-negative lift of it."""
    latent = rng.standard_normal((n, text_dim))
    lift = rng.standard_normal((text_dim, image_dim))
    texts = l2_normalise(latent + 0.1 * rng.standard_normal(latent.shape))
    images = np.maximum(latent @ lift + 3.0, 0) + 0.05 * rng.standard_normal((n, image_dim))
    return texts.astype(np.float32), images.astype(np.float32)


def top1(mapper: LinearMapper, texts: np.ndarray, images: np.ndarray) -> float:
    with torch.no_grad():
        q = mapper.encode_text(torch.from_numpy(texts)).numpy()
        d = mapper.encode_image(torch.from_numpy(images)).numpy()
    return float(np.mean((q @ d.T).argmax(1) == np.arange(len(q))))


@pytest.mark.parametrize("direction", ["image->text", "text->image"])
@pytest.mark.parametrize("solver", ["orthogonal", "least-squares"])
def test_fitted_mapper_retrieves_held_out_pairs_in_both_directions(direction, solver):
    rng = np.random.default_rng(3)
    texts, images = synthetic_pairs(700, rng)
    train, held_out = slice(0, 600), slice(600, 700)
    pairs = PairedFeatures(
        texts[train],
        images[train],
        np.arange(600),
        np.zeros((0, 8), np.float32),
        np.full(600, -1),
        [str(i) for i in range(600)],
    )
    mapper = fit_linear_mapper(pairs, MapVariant(solver, direction, pca=True, ridge=0.01))
    assert mapper.dim == 8
    assert top1(mapper, texts[held_out], images[held_out]) > 0.8
    # the same machinery with the pairing shuffled learns nothing
    shuffled = PairedFeatures(
        texts[train], images[train], rng.permutation(600), pairs.text_doc_vectors, pairs.text_rows, pairs.groups
    )
    assert (
        top1(fit_linear_mapper(shuffled, MapVariant(solver, direction, ridge=0.01)), texts[held_out], images[held_out])
        < 0.15
    )


def test_pca_basis_orders_directions_by_variance_and_whitens():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2000, 3)) * np.array([5.0, 1.0, 0.2])
    basis = PcaBasis.fit(x)
    np.testing.assert_allclose(np.abs(basis.project(3)), np.eye(3), atol=0.05)
    np.testing.assert_allclose((x - basis.mean) @ basis.project(2, whiten=True), np.zeros((2000, 2)), atol=5)
    np.testing.assert_allclose(((x - basis.mean) @ basis.project(2, whiten=True)).std(0), 1.0, atol=1e-3)


def spatial_problem(n: int, rng: np.random.Generator, channels: int = 6, side: int = 7):
    """Texts say WHERE a pattern sits in the side x side grid (top or bottom rows); the mean cannot tell."""
    where = rng.integers(0, 2, n)
    cells = side * side
    grid = np.abs(rng.standard_normal((n, cells, channels))).astype(np.float32) * 0.1 + 1.0
    pattern = np.zeros(channels, np.float32)
    pattern[0] = 3.0
    top, bottom = np.arange(side * (side // 2)), np.arange(cells - side * (side // 2), cells)
    for i in range(n):
        grid[i, top if where[i] else bottom] += pattern
    texts = np.eye(4, dtype=np.float32)[where]
    return grid, grid.mean(1), texts, where


@pytest.fixture
def one_thread():
    # tiny tensors: more threads only add contention on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gmlp_mapper_starts_at_the_linear_map_and_learns_what_pooling_loses(one_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    grid, pooled, texts, where = spatial_problem(32, rng)
    linear = LinearMapper(AffineSide(np.zeros(4), np.eye(4)), AffineSide(np.zeros(6), rng.standard_normal((6, 4))))
    mapper = gated_mapper(linear, pooled, GmlpConfig(token_dim=6, d_ffn=16, blocks=1), grid_tokens=grid.shape[1])
    p, g, t = torch.from_numpy(pooled), torch.from_numpy(grid), torch.from_numpy(texts)
    with torch.no_grad():  # zero-initialised head: the branch is silent before training
        np.testing.assert_allclose(mapper.encode_image(p, g).numpy(), linear.encode_image(p).numpy(), atol=1e-6)

    def loss() -> torch.Tensor:
        return info_nce(mapper.encode_text(t), mapper.encode_image(p, g), 10.0, [str(w) for w in where])

    before = loss().item()
    branch = [q for name, q in mapper.named_parameters() if q.requires_grad and not name.startswith("linear")]
    for _ in range(150):  # plain gradient steps: torch.optim's first use imports torch._dynamo (seconds)
        grads = torch.autograd.grad(loss(), branch, allow_unused=True, materialize_grads=True)
        with torch.no_grad():
            for parameter, grad in zip(branch, grads):
                parameter -= 0.5 * grad
    assert loss().item() < 0.5 * before
    with torch.no_grad():  # the two halves now land on their own text, which the mean alone could not do
        scores = mapper.encode_image(p, g) @ mapper.encode_text(torch.eye(4)[:2]).T
    assert (scores.argmax(1).numpy() == where).mean() > 0.95


@pytest.mark.parametrize("kind", ["linear", "gmlp", "gmlp saved without its grid size"])
def test_saved_mapper_reloads_identically(tmp_path, kind):
    rng = np.random.default_rng(6)
    grid, pooled, _, _ = spatial_problem(10, rng, side=4)  # not 7 x 7: the size comes from the grid given
    mapper = LinearMapper(
        AffineSide(rng.random(4), rng.standard_normal((4, 3))), AffineSide(rng.random(6), rng.standard_normal((6, 3)))
    )
    if kind != "linear":
        mapper = gated_mapper(mapper, pooled, GmlpConfig(token_dim=5, d_ffn=8, blocks=2), grid_tokens=16)
        torch.nn.init.normal_(mapper.head.weight)
    save_mapper(mapper, tmp_path)
    if kind == "gmlp saved without its grid size":  # as mappers were saved before the config recorded it
        config = json.loads((tmp_path / "config.json").read_text())
        del config["grid_tokens"]
        (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_mapper(tmp_path)
    assert getattr(loaded, "grid_tokens", 16) == 16
    assert type(loaded) is type(mapper) and loaded.needs_grid == (kind != "linear")
    p, g = torch.from_numpy(pooled), torch.from_numpy(grid)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.encode_image(p, g).numpy(), mapper.encode_image(p, g).numpy(), atol=1e-6)
        text = torch.ones(2, 4)
        np.testing.assert_allclose(loaded.encode_text(text).numpy(), mapper.encode_text(text).numpy(), atol=1e-6)


class FakeTextEncoder:
    dim = 4

    def encode(self, texts, progress=False):
        return l2_normalise(np.array([[len(t), 1.0, t.count("a"), 0.5] for t in texts], np.float32))


def test_model_wrapper_gives_normalised_float32_rows():
    rng = np.random.default_rng(7)
    grid, pooled, _, _ = spatial_problem(5, rng)
    linear = LinearMapper(
        AffineSide(np.zeros(4), rng.standard_normal((4, 3))), AffineSide(np.zeros(6), rng.standard_normal((6, 3)))
    )
    for mapper in (linear, gated_mapper(linear, pooled, GmlpConfig(token_dim=4, d_ffn=8), grid.shape[1])):
        model = MappedSpaceModel(FakeTextEncoder(), mapper, batch_size=2)
        images = model.encode_images(ImageFeatures(pooled, np.zeros((5, 1000)), grid))
        texts = model.encode_texts(["a cat", "banana"])
        for rows in (images, texts):
            assert rows.dtype == np.float32 and rows.shape[1] == 3
            np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="keep_grid"):
        GatedMapper.encode_image(gated_mapper(linear, pooled, GmlpConfig(token_dim=4, d_ffn=8), 49), torch.ones(1, 6))
