"""The electrolyte's conductivity: the transport's ions reproduce the library's (or the case's) κ."""

from __future__ import annotations

import pytest

from femion.config import load_case
from femion.laws import electrolyte, materials
from femion.transport import case_models

from ..conftest import CASES

ELECTROLYTES = sorted(n for n, m in materials.LIBRARY.items() if m.kind == "electrolyte")


def _case(*items):
    case = load_case(CASES / "fig4_model_III.yaml", list(items))
    return case, case.transport_layers().electrolyte


def _kappa(ions):
    return electrolyte.ionic_conductivity([i.valence for i in ions], [i.diffusivity for i in ions],
                                          [i.concentration for i in ions])


@pytest.mark.parametrize("name", ELECTROLYTES)
def test_the_transport_ions_give_the_library_conductivity(name):
    """For every library electrolyte the solver's ions (case_models.electrolyte_model) give
    F²/RT Σ z²Dc = the material's κ (within 5 %, the issue's bound; exact by construction), with
    the transference numbers of the tracer diffusivities."""
    case, layer = _case(f"geometry.layers[4].material={name}")
    model = case_models.electrolyte_model(case, layer)
    material = materials.get(name)
    assert _kappa(model.ions) == pytest.approx(material.value("conductivity"), rel=0.05)
    assert _kappa(model.ions) == pytest.approx(material.value("conductivity"), rel=1e-12)
    tracer = [case_models.Ion(*ion) for ion in materials.electrolyte_ions(material)]
    assert _cation_transference(model.ions) == pytest.approx(_cation_transference(tracer), rel=1e-12)


def _cation_transference(ions):
    """t₊ = z₊²D₊c₊ / Σ z²Dc."""
    share = [i.valence**2 * i.diffusivity * i.concentration for i in ions]
    return share[0] / sum(share)


def test_li_clo4_pc_was_4_4_times_too_conductive_with_tracer_diffusivities():
    """'nernst_einstein' keeps the tracer values: 1 M LiClO4/PC then conducts 2.5 S/m, 4.4x its 0.56 S/m."""
    case, _ = _case("transport.electrolyte.conductivity=nernst_einstein")
    assert _kappa(case.transport_ions()) == pytest.approx(2.46, rel=0.01)
    case, _ = _case()
    assert _kappa(case.transport_ions()) == pytest.approx(0.56, rel=1e-12)


def test_a_case_conductivity_overrides_the_material():
    case, _ = _case("transport.electrolyte.conductivity=3 mS/cm")
    assert _kappa(case.transport_ions()) == pytest.approx(0.3, rel=1e-12)


def test_a_bad_conductivity_is_refused():
    with pytest.raises(ValueError, match="conductivity"):
        _case("transport.electrolyte.conductivity=-1 S/m")
    with pytest.raises(ValueError, match="conductivity"):
        _case("transport.electrolyte.conductivity=3 m")


@pytest.mark.parametrize("items, expected", [
    (["transport.electrolyte.conductivity=-1 S/m"], "transport.electrolyte.conductivity"),
    (["transport.kinetics.law=butler_volmer", "transport.kinetics.alpha_a=0.3"],
     "transport.kinetics: alpha_a + alpha_c must be 1 (detailed balance)"),
])
def test_bad_electrolyte_or_kinetics_settings_get_one_line_and_exit_2(capsys, items, expected):
    from femion import cli

    argv = ["validate", str(CASES / "fig4_model_III.yaml")]
    for item in items:
        argv += ["--set", item]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
