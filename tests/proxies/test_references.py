"""Each proxy against an independent slow reference on a tiny network, in float64.

References use other mechanisms than the proxies: finite differences instead of autodiff,
numpy linear algebra, and Flax method interception (reading the actual ReLU inputs and
conv outputs) instead of the network's built-in NASWOT kernel and fisher probes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jnas import proxies
from jnas.nets import NB201Network
from jnas.nets.layers import ReLUConvBN
from jnas.proxies.base import cross_entropy, forward, is_kernel
from jnas.proxies.jacob_perclass import perclass_score
from jnas.proxies.scoring import score_one
from jnas.spaces import nb201 as sp
from tests.small_net import SmallNet

ARCH = jnp.array([3, 2, 1, 4, 3, 2])  # conv3x3, conv1x1, skip, pool, conv3x3, conv1x1
LABELS = jnp.array([0, 0, 1, 1, 2, 2])


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _score(name, net, variables, arch, x, y):
    """A proxy through the library's jitted single-architecture entry point."""
    return score_one(proxies.get(name), net, variables, arch, x, y)


def _setup(net, key, batch=6, side=8):
    """float64 variables and data for ``net`` (initialised in float32, then cast)."""
    kx, kp = jax.random.split(key)
    x = jax.random.normal(kx, (batch, side, side, 3)).astype(jnp.float64)
    variables = jax.jit(net.init)(kp, x.astype(jnp.float32), ARCH)
    variables = jax.tree.map(lambda v: v.astype(jnp.float64), variables)
    return variables, x, LABELS[:batch]


def _sum_logits(net, variables, arch):
    return lambda x: jnp.sum(forward(net, variables, x, arch))


def _fd_jacobian(f, x, h=1e-5):
    """Central differences of scalar ``f`` at every coordinate of ``x``."""
    flat = x.reshape(-1)
    eye = jnp.eye(flat.size, dtype=x.dtype)

    def partial(e):
        return (f((flat + h * e).reshape(x.shape)) - f((flat - h * e).reshape(x.shape))) / (2 * h)

    return jax.jit(lambda E: jax.lax.map(partial, E, batch_size=64))(eye).reshape(x.shape)


# ------------------------------------------------------------------ NASWOT
@pytest.mark.slow  # twin: tests/nets/test_nb201.py::test_codes_kernel_sums_every_executed_relu (the kernel, count for count)
def test_naswot_against_relu_inputs_read_by_interception(x64, key):
    net = NB201Network(C=2, N=1, num_classes=3)
    variables, x, y = _setup(net, key, batch=10)
    codes = []

    def record(next_fun, args, kwargs, context):
        module = context.module
        out = next_fun(*args, **kwargs)
        if context.method_name != "__call__":
            return out
        path = module.scope.path
        if isinstance(module, ReLUConvBN):
            edge = [p for p in path if p.startswith("edge_")]
            if not edge or sp.OPS[int(ARCH[int(edge[0].split("_")[1])])] == path[-1]:
                codes.append(np.asarray(args[0]).reshape(args[0].shape[0], -1) > 0)
        if path and path[-1] == "last_bn":
            codes.append(np.asarray(out).reshape(out.shape[0], -1) > 0)
        return out

    with nn.intercept_methods(record):
        net.clone(select="mask").apply(variables, x, ARCH, mutable=["batch_stats"])
    c = np.concatenate(codes, axis=1).astype(np.float64)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    expected = np.linalg.slogdet(kernel)[1]
    got = _score("naswot", net.clone(codes=True), variables, ARCH, x, y)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    # 4 conv edges in each of 3 cells, 2 convs in each of 2 reductions, the last ReLU
    assert len(codes) == 3 * 4 + 2 * 2 + 1


# ------------------------------------------------------------------ Jacobian scores
@pytest.mark.slow  # twin: the same check on SmallNet (below)
def test_jacobian_scores_against_finite_differences(x64, key):
    _check_jacobian_scores(NB201Network(C=2, N=1, num_classes=3), key)


def test_jacobian_scores_against_finite_differences_on_a_small_net(x64, key):
    _check_jacobian_scores(SmallNet(), key)


def _check_jacobian_scores(net, key):
    variables, x, y = _setup(net, key)
    jac = np.asarray(_fd_jacobian(_sum_logits(net, variables, ARCH), x)).reshape(x.shape[0], -1)
    corr = np.corrcoef(jac)
    v = np.linalg.eig(corr)[0].real
    expected_cov = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert float(_score("jacob_cov", net, variables, ARCH, x, y)) == pytest.approx(expected_cov, rel=1e-5)
    expected_pc = _perclass_reference(jac, np.asarray(y))
    assert float(_score("jacob_perclass", net, variables, ARCH, x, y)) == pytest.approx(expected_pc, rel=1e-5)


def _perclass_reference(jac, labels, t=1e-5, tau=100):
    """The per-class loop of the survey (docs/references.md) (GEA, Lopes et al.), formula version of the K > tau branch."""
    groups = {}
    for row, label in zip(jac, labels):
        groups.setdefault(int(label), []).append(row)
    scores = {}
    for c, rows in groups.items():
        corrs = np.corrcoef(np.vstack(rows)) if len(rows) > 1 else np.array([[1.0]])
        s = np.sum(np.log(np.abs(corrs) + t))
        if len(groups) > tau:
            s /= len(corrs)
        scores[c] = s
    vals = list(scores.values())
    if len(groups) <= tau:
        return sum(abs(v) for v in vals)
    pairs = [(i, j) for i in range(len(vals)) for j in range(i + 1, len(vals))]
    return sum(abs(vals[i] - vals[j]) for i, j in pairs) / len(pairs)


def test_perclass_many_classes_branch(x64, key):
    # 120 classes > tau = 100: the normalised pairwise-difference branch.
    labels = np.repeat(np.arange(120), 3)[:340]
    jac = np.asarray(jax.random.normal(key, (340, 20), jnp.float64))
    got = float(perclass_score(jnp.asarray(jac), jnp.asarray(labels), 130))
    assert got == pytest.approx(_perclass_reference(jac, labels), rel=1e-8)


# ------------------------------------------------------------------ synflow
@pytest.mark.slow
def test_synflow_is_the_scaling_derivative_of_R(x64, key):
    # All synflow terms are >= 0, so their sum is d/ds R(s * |kernels|) at s = 1 (Euler).
    net = NB201Network(C=2, N=1, num_classes=3, use_bn=False)
    variables, x, y = _setup(net, key)
    absp = jax.tree.map(jnp.abs, variables["params"])

    def r_of(s):
        p = jax.tree_util.tree_map_with_path(lambda path, v: v * s if is_kernel(path) else v, absp)
        return jnp.sum(forward(net, {"params": p}, jnp.ones((1, 8, 8, 3)), ARCH))

    h = 1e-6
    expected = (r_of(1 + h) - r_of(1 - h)) / (2 * h)
    got = _score("synflow", net, variables, ARCH, x, y)
    assert float(got) == pytest.approx(float(expected), rel=1e-7)
    # Every path passes through the stem conv: its term alone is R minus the bias sum.
    bias = float(jnp.sum(absp["classifier"]["bias"]))
    r1 = float(r_of(1.0))
    g = jax.grad(lambda p: jnp.sum(forward(net, {"params": p}, jnp.ones((1, 8, 8, 3)), ARCH)))(absp)
    stem_term = float(jnp.sum(absp["stem"]["kernel"] * g["stem"]["kernel"]))
    assert stem_term == pytest.approx(r1 - bias, rel=1e-10)


@pytest.mark.slow  # twin: the same check on SmallNet (below)
def test_synflow_equals_the_published_gradient_sum(x64, key):
    _check_synflow_sum(NB201Network(C=2, N=1, num_classes=3, use_bn=False), key)


def test_synflow_equals_the_published_gradient_sum_on_a_small_net(x64, key):
    _check_synflow_sum(SmallNet(use_bn=False), key)


def _check_synflow_sum(net, key):
    # The definition term by term: sum over kernels of |theta * dR/dtheta| by reverse mode.
    variables, x, y = _setup(net, key)
    absp = jax.tree.map(jnp.abs, variables["params"])
    ones = jnp.ones((1, 8, 8, 3))
    grad_r = jax.jit(jax.grad(lambda p, arch: jnp.sum(forward(net, {"params": p}, ones, arch))))
    for arch in (ARCH, jnp.array([3, 3, 3, 3, 3, 3]), jnp.array([1, 4, 0, 2, 1, 4])):
        g = grad_r(absp, arch)
        terms = jax.tree_util.tree_map_with_path(lambda path, p, d: jnp.sum(jnp.abs(p * d)) if is_kernel(path) else 0.0, absp, g)
        expected = sum(float(t) for t in jax.tree.leaves(terms))
        assert float(_score("synflow", net, variables, arch, x, y)) == pytest.approx(expected, rel=1e-10)


def test_synflow_of_disconnected_cell_is_zero(x64, key):
    net = NB201Network(C=2, N=1, num_classes=3, use_bn=False)
    variables, x, y = _setup(net, key)
    for arch in (jnp.zeros(6, jnp.int32), jnp.array([0, 0, 3, 0, 2, 4])):  # no path 0 -> 3
        assert not sp.is_connected(arch)
        assert float(_score("synflow", net, variables, arch, x, y)) == 0.0
    assert float(_score("synflow", net, variables, ARCH, x, y)) > 0


# ------------------------------------------------------------------ snip, grad_norm, grasp
def _kernel_fd_grad(loss, params, h=1e-6):
    """Finite-difference gradient of ``loss`` in every kernel element (others held)."""
    flat, unravel = ravel_pytree(params)
    kmask = jax.tree_util.tree_map_with_path(lambda p, v: jnp.full_like(v, is_kernel(p)), params)
    idx = np.flatnonzero(np.asarray(ravel_pytree(kmask)[0]))

    def partial(i):
        e = jnp.zeros_like(flat).at[i].set(h)
        return (loss(unravel(flat + e)) - loss(unravel(flat - e))) / (2 * h)

    vals = jax.jit(lambda I: jax.lax.map(partial, I, batch_size=32))(jnp.asarray(idx))
    return unravel(jnp.zeros_like(flat).at[idx].set(vals))


def _grad_setup(net, key):
    variables, x, y = _setup(net, key)

    def loss(p):
        return cross_entropy(forward(net, {**variables, "params": p}, x, ARCH), y)

    return net, variables, x, y, loss, _kernel_fd_grad(jax.jit(loss), variables["params"])


def _kernel_leaves(tree):
    return [l for p, l in jax.tree_util.tree_flatten_with_path(tree)[0] if is_kernel(p)]


@pytest.mark.slow  # twin: the same check on SmallNet (below)
def test_pruning_scores_against_finite_differences(x64, key):
    # One test for the three, so that the finite-difference gradient (the costly part) is
    # computed once, not once per pytest-xdist worker.
    _check_pruning_scores(*_grad_setup(NB201Network(C=1, N=1, num_classes=3), jax.random.key(0)))


def test_pruning_scores_against_finite_differences_on_a_small_net(x64, key):
    _check_pruning_scores(*_grad_setup(SmallNet(), jax.random.key(0)))


def _check_pruning_scores(net, variables, x, y, loss, fd):
    thetas, grads = _kernel_leaves(variables["params"]), _kernel_leaves(fd)
    snip_ref = sum(float(jnp.sum(jnp.abs(t * g))) for t, g in zip(thetas, grads))
    norm_ref = sum(float(jnp.linalg.norm(g.ravel())) for g in grads)
    assert float(_score("snip", net, variables, ARCH, x, y)) == pytest.approx(snip_ref, rel=1e-6)
    assert float(_score("grad_norm", net, variables, ARCH, x, y)) == pytest.approx(norm_ref, rel=1e-6)
    # grasp: -theta * (H g) against a central difference of the gradient along g.
    params = variables["params"]
    kmask = jax.tree_util.tree_map_with_path(lambda p, v: jnp.full_like(v, is_kernel(p)), params)
    g = jax.tree.map(lambda a, m: a * m, fd, kmask)
    norm = float(jnp.sqrt(sum(jnp.sum(v * v) for v in jax.tree.leaves(g))))
    grad = jax.jit(jax.grad(loss))
    h = 1e-5  # step along the unit direction g / |g|; H g = |g| * H (g / |g|)
    plus = grad(jax.tree.map(lambda p, d: p + h * d / norm, params, g))
    minus = grad(jax.tree.map(lambda p, d: p - h * d / norm, params, g))
    hg = jax.tree.map(lambda a, b: norm * (a - b) / (2 * h), plus, minus)
    expected = sum(float(-jnp.sum(t * v)) for t, v in zip(_kernel_leaves(params), _kernel_leaves(hg)))
    assert float(_score("grasp", net, variables, ARCH, x, y)) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ fisher
@pytest.mark.slow  # twin: the same check on SmallNet (below)
@pytest.mark.parametrize("cell_affine", [True, False])
def test_fisher_against_intercepted_activations(x64, key, cell_affine):
    # cell_affine=False: the conv outputs the reference hooks read include the conv bias.
    _check_fisher(NB201Network(C=2, N=1, num_classes=3, cell_affine=cell_affine), key)


def test_fisher_against_intercepted_activations_on_a_small_net(x64, key):
    _check_fisher(SmallNet(), key)  # block1's conv has a bias, block0's not


def _check_fisher(net, key):
    variables, x, y = _setup(net, key)
    masked = net.clone(select="mask") if hasattr(net, "select") else net

    def run(deltas):
        acts = {}

        def hook(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if isinstance(context.module, (nn.Conv, nn.Dense)) and context.method_name == "__call__":
                path = "/".join(context.module.scope.path)
                acts[path] = jax.lax.stop_gradient(out)
                if deltas is not None:
                    out = out + deltas[path]
            return out

        with nn.intercept_methods(hook):
            logits = forward(masked, variables, x, ARCH)
        return cross_entropy(logits, y), acts

    _, shapes = jax.eval_shape(lambda: run(None))
    zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}
    grads, acts = jax.jit(jax.grad(run, has_aux=True))(zeros)
    kernels = {"/".join(p.key for p in path[:-1]): l for path, l in jax.tree_util.tree_flatten_with_path(variables["params"])[0] if is_kernel(path)}
    expected = 0.0
    for path, a in acts.items():
        per_image = (a * grads[path]).reshape(a.shape[0], -1, a.shape[-1]).sum(1)
        fan_in = int(np.prod(kernels[path].shape[:-1]))
        expected += fan_in * float(jnp.sum(0.5 * jnp.mean(per_image**2, axis=0)))
    probed = net.clone(probes=True)
    pv = jax.jit(probed.init)(key, x.astype(jnp.float32), ARCH)
    v = {**variables, "probes": jax.tree.map(lambda p: p.astype(jnp.float64), pv["probes"])}
    assert float(_score("fisher", probed, v, ARCH, x, y)) == pytest.approx(expected, rel=1e-8)
    assert expected > 0


# ------------------------------------------------------------------ params / flops
def test_params_and_flops_proxies_match_table(table, key):
    archs = sp.sample(key, 5)
    x = jnp.zeros((1, 32, 32, 3))
    y = jnp.zeros((1,), jnp.int32)
    for name, col in (("params", "params_M"), ("flops", "flops_M")):
        got = proxies.score(name, archs, (x, y), key, progress=False)
        np.testing.assert_allclose(got, np.asarray(table.query(archs, col)), rtol=1e-4)
