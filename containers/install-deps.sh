#!/bin/sh
# Install femion (and its test tools) into a DOLFINx image, keeping the image's DOLFINx and gmsh:
# femion itself without dependencies, then pyproject.toml's dependencies and test extra except
# gmsh (the image's, built with its OpenCASCADE; the PyPI gmsh would shadow it). Run from the
# directory holding pyproject.toml.
set -eu
python3 -c "import gmsh, dolfinx; print('image: gmsh', gmsh.__version__, 'dolfinx', dolfinx.__version__)"
python3 -m pip install --no-cache-dir --no-deps .
python3 - <<'PY' > /tmp/femion-requirements.txt
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for dep in project["dependencies"] + project["optional-dependencies"]["test"]:
    if not dep.replace(" ", "").lower().startswith("gmsh"):
        print(dep)
PY
python3 -m pip install --no-cache-dir -r /tmp/femion-requirements.txt
