"""One-shot and differentiable NAS: DARTS supernets (NB201 and DARTS cell spaces), the
bilevel search step, PC-DARTS options and P-DARTS stages, and single-path supernet training
with sub-networks scored on inherited weights (RSPS, SPOS) or on weights a hypernetwork
generates (SMASH, GHN); GDAS is a search-step option (``SearchConfig.gumbel_tau``)."""

from jnas.oneshot import darts_cells, hyper, mixing, nb201, pdarts, single_path
from jnas.oneshot.search import SearchConfig, SearchState, init_state, make_alpha_curvature, make_step, search_loss

__all__ = ["SearchConfig", "SearchState", "darts_cells", "hyper", "init_state", "make_alpha_curvature", "make_step", "mixing", "nb201", "pdarts", "search_loss", "single_path"]
