"""Layer-wise O-information: layer_oinfo, average_over_seeds, plot_oinfo."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import plant_units

from prune_info.analysis.oinfo import (
    MultipletSizeClipped,
    average_over_seeds,
    dominance,
    layer_oinfo,
    results_to_dict,
)
from prune_info.capture import CaptureOptions, unit_outputs
from prune_info.checkpoint import clone_model
from prune_info.data import Split
from prune_info.errors import PruneInfoError
from prune_info.measures.gaussian import SingularCovarianceWarning
from prune_info.measures.multiplets import search_multiplets
from prune_info.nn import prunable_layers
from prune_info.viz.oinfo import plot_oinfo


@pytest.fixture(scope="module")
def small_val(digits):
    return Split(digits.val.x[:300], digits.val.y[:300])


def test_layer_oinfo_equals_the_search_on_captured_pre_activations(digits_mlp, small_val):
    res = layer_oinfo(digits_mlp, small_val, max_exhaustive=3, max_size=6, seed=2)
    assert list(res) == ["fc1", "fc2"]
    layers = prunable_layers(digits_mlp.model)
    acts = unit_outputs(digits_mlp.model, layers, small_val.x,
                        CaptureOptions(pre_activation=True))
    for name in ("fc1", "fc2"):
        ref = search_multiplets(acts[name].double().numpy(), small_val.y.numpy(),
                                max_exhaustive=3, max_size=6, seed=2)
        assert sorted(res[name].sizes) == [2, 3, 4, 5, 6]
        for k in range(2, 7):
            got, want = res[name].sizes[k], ref.sizes[k]
            assert got.synergy_units == want.synergy_units
            assert got.redundancy_units == want.redundancy_units
            assert got.synergy_omega == pytest.approx(want.synergy_omega, abs=1e-12)
            assert got.synergy_omega <= got.redundancy_omega
        assert res[name].sizes[3].synergy_method == "exhaustive"
        assert res[name].sizes[4].synergy_method == "greedy"


def test_post_activation_reading_differs(digits_mlp, small_val):
    pre = layer_oinfo(digits_mlp, small_val, "fc2", max_exhaustive=2, max_size=2)
    post = layer_oinfo(digits_mlp, small_val, "fc2", max_exhaustive=2, max_size=2,
                       post_activation=True)
    assert pre["fc2"].sizes[2].redundancy_omega != post["fc2"].sizes[2].redundancy_omega


def test_max_size_beyond_the_layer_is_clipped_with_one_warning(digits_mlp, small_val):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = layer_oinfo(digits_mlp.model, small_val, ["fc1", "fc2"], max_exhaustive=2,
                          max_size=30)
    clipped = [str(w.message) for w in caught if issubclass(w.category, MultipletSizeClipped)]
    assert clipped == ["fc2: max_size 30 exceeds the layer's 24 units; searched up to 24"]
    assert max(res["fc1"].sizes) == 30
    assert max(res["fc2"].sizes) == 24
    whole = res["fc2"].sizes[24]  # one multiplet of 24 units: min = max
    assert whole.synergy_omega == pytest.approx(whole.redundancy_omega, abs=1e-9)


def test_duplicated_units_give_one_warning_naming_the_layer(digits_mlp, small_val):
    model = plant_units(clone_model(digits_mlp.model), "fc2", duplicates=((0, 3), (1, 4)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = layer_oinfo(model, small_val, "fc2", max_exhaustive=3, max_size=8)
    singular = [w for w in caught if issubclass(w.category, SingularCovarianceWarning)]
    assert len(singular) == 1
    assert str(singular[0].message).startswith("fc2: singular covariance (duplicated units "
                                               "3 (= 0), 4 (= 1))")
    values = [v for r in res["fc2"].sizes.values() for v in (r.synergy_omega, r.redundancy_omega)]
    assert all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("n, match", [(20, "fc1: 20 samples for 32 units"),
                                      (0, "the split is empty")])
def test_too_few_samples_is_a_clear_error(digits_mlp, digits, n, match):
    with pytest.raises(PruneInfoError, match=match):
        layer_oinfo(digits_mlp, Split(digits.val.x[:n], digits.val.y[:n]))


def test_single_class_is_a_clear_error(digits_mlp, digits):
    keep = digits.val.y == 3
    with pytest.raises(PruneInfoError, match="single class"):
        layer_oinfo(digits_mlp, Split(digits.val.x[keep], digits.val.y[keep]))


def test_unknown_layer_is_a_clear_error(digits_mlp, small_val):
    with pytest.raises(PruneInfoError, match="'fc9' is not a prunable layer.*fc1, fc2"):
        layer_oinfo(digits_mlp, small_val, "fc9")


def _fake(values: dict[int, tuple[float, float]]):
    from prune_info.measures.multiplets import MultipletSearch, SizeResult

    sizes = {k: SizeResult(k, tuple(range(k)), s, "exhaustive", tuple(range(k)), r, "greedy")
             for k, (s, r) in values.items()}
    return MultipletSearch("fc1", 5, 100, 2, max(values), 0, sizes, np.arange(5), 1, 0.0)


def test_average_over_seeds_gives_mean_and_sample_std():
    a = {"fc1": _fake({2: (-1.0, 2.0), 3: (-2.0, 4.0)})}
    b = {"fc1": _fake({2: (-3.0, 2.0), 3: (-4.0, 6.0), 4: (-5.0, 7.0)})}
    avg = average_over_seeds([a, {"fc1": b["fc1"].to_dict()}])
    fc1 = avg["fc1"]
    assert fc1["sizes"] == [2, 3] and fc1["n_seeds"] == 2
    assert fc1["synergy_mean"] == [-2.0, -3.0]
    assert fc1["redundancy_mean"] == [2.0, 5.0]
    assert fc1["synergy_std"] == pytest.approx([math.sqrt(2), math.sqrt(2)])
    assert fc1["redundancy_std"] == pytest.approx([0.0, math.sqrt(2)])
    single = average_over_seeds([a])["fc1"]
    assert single["synergy_std"] == [0.0, 0.0]  # never NaN
    with pytest.raises(PruneInfoError, match="same layers"):
        average_over_seeds([a, {"fc2": a["fc1"]}])
    with pytest.raises(PruneInfoError, match="no result"):
        average_over_seeds([])


def test_dominance_sums_the_extremes():
    d = dominance(_fake({2: (-1.0, 0.5), 3: (0.25, 2.0)}))
    assert d == {"synergy": 1.0, "redundancy": 2.5, "label": "redundancy"}
    doc = results_to_dict({"fc1": _fake({2: (-3.0, 1.0)})})
    assert doc["layers"][0]["dominance"]["label"] == "synergy"


def test_plot_oinfo_writes_an_image_for_raw_and_averaged_results(tmp_path):
    res = {"fc1": _fake({2: (-1.0, 2.0), 3: (-2.0, 4.0)}),
           "fc2": _fake({2: (-3.0, 1.0), 3: (-4.0, 2.0)})}
    raw = plot_oinfo(res, tmp_path / "raw.png", title="t")
    avg = plot_oinfo(average_over_seeds([res, res]), tmp_path / "avg.svg")
    assert raw.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in avg.read_bytes()[:400]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg.svg", "raw.png"]  # no temp left
    with pytest.raises(PruneInfoError, match="image format"):
        plot_oinfo(res, tmp_path / "x.nope")
