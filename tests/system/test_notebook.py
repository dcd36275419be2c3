"""The example notebook runs from top to bottom (so it cannot rot), and shows what it says."""

from __future__ import annotations

import pytest

from ..conftest import ROOT


def test_quickstart_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the notebook runs from examples/ and finds ../cases; here from a copy beside a link to them
    (tmp_path / "cases").symlink_to(ROOT / "cases")
    work = tmp_path / "examples"
    work.mkdir()
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    # the kernel inherits this process's environment (XDG_CACHE_HOME: the suite's compiled forms)
    where = {"metadata": {"path": str(work)}}
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources=where)
    client.execute()
    cells = [c.get("outputs", []) for c in nb.cells if c.cell_type == "code"]
    value = [next((o["data"]["text/plain"] for o in outs if o["output_type"] == "execute_result"), "")
             for outs in cells]
    printed = ["".join(o.get("text", "") for o in outs if o["output_type"] == "stream") for outs in cells]
    assert "fig4_model_III" in value[0]
    assert "femion Result" in value[1] and (work / "results" / "model_III_notebook" / "summary.json").is_file()
    assert float(value[2]) > 0  # the Li moved to the right end
    assert "'theta'" in value[3]
    assert "fig4_model_III" in printed[4]
