"""One-shot and differentiable NAS: DARTS supernets (NB201 and DARTS cell spaces), the
bilevel search step, PC-DARTS options and P-DARTS stages."""

from jnas.oneshot import darts_cells, mixing, nb201, pdarts
from jnas.oneshot.search import SearchConfig, SearchState, init_state, make_alpha_curvature, make_step, search_loss

__all__ = ["SearchConfig", "SearchState", "darts_cells", "init_state", "make_alpha_curvature", "make_step", "mixing", "nb201", "pdarts", "search_loss"]
