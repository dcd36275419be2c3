"""The FFCx form cache under concurrent runs and after a killed compile (femion._dolfinx).

Each test starts fresh Python processes on a private, empty cache (XDG_CACHE_HOME) and config
(XDG_CONFIG_HOME, so no user dolfinx_jit_options.json applies).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A P2 form with nonlinear coefficients: a compile of a few seconds, the same module in every process.
COMPILE = """
from femion._dolfinx import MPI, dolfinx, ufl
msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 2, 2)
V = dolfinx.fem.functionspace(msh, ("Lagrange", 2))
u, v, f = ufl.TrialFunction(V), ufl.TestFunction(V), dolfinx.fem.Function(V)
a = (ufl.exp(f) * ufl.inner(ufl.grad(u), ufl.grad(v)) + ufl.sin(f) * u * v) * ufl.dx
dolfinx.fem.form(a)
print("compiled")
"""


def _env(tmp: Path, **extra) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp / "cache"), XDG_CONFIG_HOME=str(tmp / "config"),
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("FEMION_JIT_TIMEOUT", None)
    env.update(extra)
    return env


def _start(tmp: Path, code: str = COMPILE, cwd: Path | None = None, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env=_env(tmp, **extra), cwd=cwd or tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def test_concurrent_cold_cache(tmp_path):
    """Three processes compile the same form at once on an empty cache while the compiler takes
    12 s (a loaded machine): the two that wait for the first must not time out (FFCx's 10 s)."""
    cc = shutil.which(shlex.split(sysconfig.get_config_var("CC") or "cc")[0])
    slow = tmp_path / "slowcc"
    slow.write_text(f'#!/bin/sh\ncase " $* " in *" -c "*) sleep 12;; esac\nexec {cc} "$@"\n')
    slow.chmod(0o755)
    t0 = time.perf_counter()
    procs = [_start(tmp_path, CC=str(slow)) for _ in range(3)]
    outs = [_finish(p) for p in procs]
    assert all("compiled" in o for o in outs)
    cache = tmp_path / "cache" / "fenics"
    assert len(list(cache.glob("*.c.cached"))) == 1  # one compile, the others loaded it
    print(f"3 concurrent cold-cache compiles: {time.perf_counter() - t0:.1f} s")


def test_stale_half_compile_does_not_block(tmp_path):
    """A killed compile's ``.c`` (no ``.c.cached``, hours old) is set aside at import: the next run
    compiles the form instead of waiting for it. Fresh claims and finished modules are kept."""
    _finish(_start(tmp_path))
    cache = tmp_path / "cache" / "fenics"
    (done,) = cache.glob("*.c.cached")
    c_file = done.with_suffix("")  # <module>.c
    module = c_file.stem
    # the state a process killed mid-compile leaves: the claimed .c, nothing else
    for f in cache.iterdir():
        if f.name.startswith(module) and f != c_file:
            f.unlink() if f.is_file() else shutil.rmtree(f)
    hours_ago = time.time() - 5 * 3600
    os.utime(c_file, (hours_ago, hours_ago))
    fresh = cache / "libffcx_forms_compiling_now.c"  # another process is compiling this one
    fresh.write_text("")
    finished = cache / "libffcx_forms_finished.c"
    finished.write_text("")
    (cache / "libffcx_forms_finished.c.cached").write_text("")
    os.utime(finished, (hours_ago, hours_ago))

    t0 = time.perf_counter()
    _finish(_start(tmp_path), timeout=60)
    assert time.perf_counter() - t0 < 60
    assert c_file.with_suffix(".c.failed").exists()
    assert c_file.with_suffix(".c.cached").exists()  # compiled again
    assert fresh.exists() and finished.exists()


@pytest.mark.parametrize("env, json_timeout, expected", [({}, None, 600), ({"FEMION_JIT_TIMEOUT": "42"}, None, 42),
                                                         ({"FEMION_JIT_TIMEOUT": "42"}, 7, 7)])
def test_jit_timeout_default(tmp_path, env, json_timeout, expected):
    """The JIT wait is 600 s, or $FEMION_JIT_TIMEOUT; a dolfinx_jit_options.json still wins."""
    if json_timeout is not None:
        (tmp_path / "dolfinx_jit_options.json").write_text(f'{{"timeout": {json_timeout}}}')
    code = "import femion._dolfinx, dolfinx.jit; print(dolfinx.jit.get_options()['timeout'])"
    out = _finish(_start(tmp_path, code, **env))
    assert int(out.split()[-1]) == expected
