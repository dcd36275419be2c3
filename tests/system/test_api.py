"""femion from Python: load_case / run / Result, and the results layout (format 2) that pyvista reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

import femion
from femion.config import CaseError, read_case_mapping
from femion.results import OutputError
from femion.results.reader import Result, open_result

from ..conftest import CASES

SHORT = {"transport.duration": "20 s", "transport.outputs": 2, "output.figures": False}


def test_load_case_from_a_file_or_a_mapping_with_set_and_quick():
    path = CASES / "fig4_model_III.yaml"
    by_path = femion.load_case(path, set=["transport.oxide.initial_filling=0.25"], quick=True)
    by_map = femion.load_case(read_case_mapping(path), set={"transport.oxide.initial_filling": 0.25}, quick=True)
    assert by_path == by_map
    assert by_path.transport.oxide.initial_filling == pytest.approx(0.25)
    plain = femion.load_case(path)
    assert plain.mesh != by_path.mesh  # quick's coarser mesh applied
    with pytest.raises(CaseError, match=r"initial_filing"):  # one line naming the bad key, as the CLI
        femion.load_case(path, set={"transport.oxide.initial_filing": 0.25})


def test_set_wins_over_a_variants_own_value_as_on_the_command_line():
    case = femion.load_case(CASES / "fig5ab_current_sweep.yaml", set={"drives[0].current": "0.03 A"})
    assert case.variants  # kept, to be run by femion.run
    assert all(v["drives[0].current"] == "0.03 A" for v in case.variants.values())


@pytest.mark.mpi
def test_run_returns_the_result_and_fields_open_by_name_in_the_plate_frame(shared_tmp, comm):
    """femion.run → Result; each .vtkhdf array carries its field's name; a section's fields lie in
    the x–z plane at y = section_y (the plate's frame, beside the plan fields); pyvista's
    vtkHDFReader idiom reads any output step; format_version 2 in summary.json."""
    case = femion.load_case(CASES / "strip_transport.yaml", set=SHORT)
    result = femion.run(case, out=shared_tmp / "api", comm=comm)
    assert isinstance(result, Result)
    assert result.times == pytest.approx([0.0, 10.0, 20.0])
    assert result.format_version == 2 and result.summary["format_version"] == 2
    if comm.rank != 0:
        return
    import pyvista as pv
    import vtk

    s = result.summary
    y_sec = s["transport"]["section_y_m"]
    z0, z1 = s["layer_z_m"][s["transport"]["oxide_layer"]]
    theta = result.field("theta", 20.0)
    assert "theta" in theta.array_names
    pts = np.asarray(theta.points)
    assert np.allclose(pts[:, 1], y_sec)
    assert pts[:, 2].min() == pytest.approx(z0) and pts[:, 2].max() == pytest.approx(z1)
    # the files themselves: pyvista.read gives the first step, named after the field, in the same frame
    raw = pv.read(result.path / "fields" / "theta.vtkhdf")
    assert list(raw.point_data) == ["theta"] and np.allclose(raw.points, pts)
    reader = vtk.vtkHDFReader()  # the time-step idiom of the README
    reader.SetFileName(str(result.path / "fields" / "theta.vtkhdf"))
    reader.UpdateInformation()
    assert reader.GetNumberOfSteps() == 3
    reader.SetStep(2)
    reader.Update()
    np.testing.assert_array_equal(pv.wrap(reader.GetOutput())["theta"], theta["theta"])
    phi = result.field("phi_s_bottom_ito")  # a plan field: x–y, z = 0
    assert "phi_s_bottom_ito" in phi.array_names and np.allclose(np.asarray(phi.points)[:, 2], 0.0)
    assert [t for t, _ in result.series("c_Li")] == result.times
    with pytest.raises(ValueError, match="give time="):
        result.field("theta")
    # probing works on the renamed, moved files
    line = np.c_[np.linspace(0.005, 0.045, 5), np.full(5, y_sec), np.full(5, 0.5 * (z0 + z1))]
    assert np.all(np.isfinite(result.probe("theta", line, time=20.0)))


def test_a_parent_of_variants_opens_and_lists_its_variants(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "summary.json").write_text(json.dumps({"case": "x", "variants": ["a", "b"]}))
    parent = open_result(tmp_path)
    assert parent.variant_names == ["a", "b"] and "variants a, b" in repr(parent)
    with pytest.raises(OutputError, match="open one"):
        parent.film_filling(0.0)


def test_plate_frame_moves_a_section_for_the_writers_and_back():
    """Inside plate_frame a section mesh's nodes are (x, section_y, z) (what VTX and VTKHDF write);
    after it, exactly the (x, z, 0) the solver uses."""
    from femion._dolfinx import MPI, dolfinx
    from femion.results.writer import plate_frame

    msh = dolfinx.mesh.create_rectangle(MPI.COMM_SELF, [[0.0, 0.0], [0.05, 1e-3]], [4, 2],
                                        dolfinx.mesh.CellType.quadrilateral)
    solved = msh.geometry.x.copy()
    with plate_frame(msh, 0.01):
        x = msh.geometry.x
        np.testing.assert_array_equal(x[:, 0], solved[:, 0])
        np.testing.assert_array_equal(x[:, 1], 0.01)
        np.testing.assert_array_equal(x[:, 2], solved[:, 1])
    np.testing.assert_array_equal(msh.geometry.x, solved)
    with pytest.raises(RuntimeError), plate_frame(msh, 0.01):
        raise RuntimeError("a failed write")
    np.testing.assert_array_equal(msh.geometry.x, solved)  # restored on an error too
