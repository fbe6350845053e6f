"""A network the size of a unit test with the NB201 network's call signature, for checks of
proxy formulas and scoring plumbing that do not depend on the NB201 cell."""

import flax.linen as nn
import jax.numpy as jnp

from jnas.nets.layers import ChannelProbe


class _ProbedConv(nn.Module):
    """A conv named ``conv`` with a fisher channel probe named ``probe`` behind it (as in NB201's ops)."""

    features: int
    kernel: int
    probes: bool = False
    use_bias: bool = False

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.features, (self.kernel, self.kernel), use_bias=self.use_bias, name="conv")(x)
        return ChannelProbe(name="probe")(y) if self.probes else y


class SmallNet(nn.Module):
    """A network the size of a unit test (conv, BN, ReLU, arch-dependent mixing, dense) with the
    NB201 network's call signature and its ``use_bn``/``probes`` options: the proxies'
    formulas checked in seconds, where compiling an NB201 network through its 18 switches
    takes most of a minute (the NB201 versions are the slow tests beside the twins)."""

    num_classes: int = 3
    use_bn: bool = True
    probes: bool = False

    @nn.compact
    def __call__(self, x, arch, train: bool = True):
        h = _ProbedConv(3, 3, self.probes, name="block0")(x)
        if self.use_bn:
            h = nn.BatchNorm(use_running_average=not train)(h)
        h = nn.relu(h) * (1.0 + arch[0].astype(h.dtype)) + jnp.roll(h, 1, -1) * arch[1].astype(h.dtype)
        h = nn.relu(_ProbedConv(2, 1, self.probes, use_bias=True, name="block1")(h))
        out = nn.Dense(self.num_classes, name="classifier")(h.reshape(h.shape[0], -1))
        return ChannelProbe(name="classifier_probe")(out) if self.probes else out
