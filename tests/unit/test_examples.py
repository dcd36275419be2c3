"""`femion examples DIR` copies the shipped cases, each valid, and never overwrites a case file."""

from __future__ import annotations

from femion import cli
from femion.config import load_runs

from ..conftest import CASES


def test_examples_copies_every_case_once(tmp_path, capsys):
    target = tmp_path / "mine"
    assert cli.main(["examples", str(target)]) == 0
    copied = sorted(p.name for p in target.glob("*.yaml"))
    assert copied == sorted(p.name for p in CASES.glob("*.yaml")) and len(copied) >= 10
    for name in copied:
        assert (target / name).read_bytes() == (CASES / name).read_bytes()
    load_runs(target / "fig4_model_III.yaml", quick=True)  # a copied case runs as the shipped one
    (target / "fig2_protocol.yaml").write_text("# edited\n")
    assert cli.main(["examples", str(target)]) == 2  # nothing overwritten
    assert "fig2_protocol.yaml exists" in capsys.readouterr().err
    assert (target / "fig2_protocol.yaml").read_text() == "# edited\n"
