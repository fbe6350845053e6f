import json

import pytest

from experiments import bilevel_study


@pytest.mark.slow  # twins: tests/bilevel/test_estimators.py checks each estimator against the closed forms
def test_bilevel_study_writes_errors_against_closed_forms(tmp_path, data_dir):
    out = tmp_path / "study"
    args = ["--data-dir", str(data_dir), "--out", str(out), "--budgets", "1,60", "--outer-iters", "150",
            "--seeds", "2", "--horizons", "50,100"]
    bilevel_study.main(args)
    errs = json.loads((out / "hypergrad_errors.json").read_text())
    assert set(errs) == {"quadratic", "ridge_mnist"}
    for prob in errs.values():
        # CG with more iterations than inner dimensions (30 and 51) is exact; first order is not.
        assert prob["implicit_cg"]["60"] < 1e-8
        assert prob["first_order"]["1"] > 0.1
        assert prob["implicit_cg"]["1"] > prob["implicit_cg"]["60"]
    conv = json.loads((out / "convergence.json").read_text())["quadratic"]
    for method in ("ttsa", "implicit", "unrolled"):
        assert conv[method]["err"][-1] < 0.5 * conv[method]["err"][0]
    rates = json.loads((out / "ttsa_rates.json").read_text())
    assert set(rates["weakly_convex"]["mean_sq_grad_by_horizon"]) == {"50", "100"}
    assert (out / "hypergrad_errors.png").exists() and (out / "convergence.png").exists()
    # A rerun with the same settings resumes from the files and gives the same numbers.
    again = bilevel_study.main(args)
    assert again["hypergrad_errors"] == errs
