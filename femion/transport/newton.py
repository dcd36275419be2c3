"""The bounded Newton solver of a transport step: MUMPS, per-field update limits, a logit update
taken in θ, bounds on logit θ and ln c, optional backtracking on ‖F‖, and a convergence test
that knows the residual's round-off floor."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from femion._dolfinx import MPI, PETSc, dolfinx


class TransportSolveError(RuntimeError):
    """Newton failed (or gave a non-finite state) for a transport step."""


class BoundedNewton:
    """Newton on the unknowns ``names`` (in block order); ``volume`` = |Ω| sets the absolute scale."""

    #: largest Newton change per iteration: log-concentrations and logit(θ) by 2 (a factor e²
    #: in c), ψ by 10 (0.26 V), φ_e by 0.5 V. Unclipped Newton on log variables overshoots
    #: when a concentration must rise by decades in a step, then creeps back one unit per step.
    MAX_UPDATE: ClassVar[dict[str, float]] = {"w": 2.0, "psi": 10.0, "phi_e": 0.5, "mu": 10.0}
    MAX_UPDATE_LOG_C = 2.0
    STEP_TOLERANCE = 1e-10
    STALL_ITERATIONS = 6
    #: Bounds of logit θ and of ln(c/c_ref): θ ≥ 1e-26, 1 − θ ≥ 1e-13 (1 − θ must stay
    #: representable beside θ ≈ 1 in double precision), c ≥ 1e-26 c_ref. Under a drive of volts a
    #: depleted spot empties in finite time (the exit rate is first order in θ, times
    #: exp(α_a F η/RT)) and implicit steps would carry its logit to −∞; 1e-26 of the capacity
    #: is ~1e-11 ions in a 1 mm² × 500 nm cell, so the bound changes no total measurably
    #: (the conservation error in the summary includes it).
    LOGIT_BOUNDS = (-25.0, 25.0)
    LOG_C_MIN = -60.0

    def __init__(self, names, spaces, comm, volume: float):
        self.names, self.spaces, self.comm, self.volume = list(names), spaces, comm, volume

    def converged(self, snes, it, norms):
        """Newton test: 1e-13 relative or 1e-14·|Ω| absolute, or stagnation at round-off.

        Round-off in the assembled residual floors near 1e-14·|Ω|; once the residual is that
        small and no longer falls (quadratic convergence has ended), the step is done. Species
        totals then hold to ~1e-14 per step.
        """
        fnorm = norms[2]
        rtol, atol, _, max_it = snes.getTolerances()
        if it == 0:
            self._r0 = self._rprev = fnorm
            self._flat = 0
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS if fnorm <= atol else 0
        if not np.isfinite(fnorm):
            return PETSc.SNES.ConvergedReason.DIVERGED_FUNCTION_NANORINF
        if fnorm <= atol:
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS
        if fnorm <= rtol * self._r0:
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_RELATIVE
        if fnorm <= 1e-12 * self.volume and fnorm > 0.2 * self._rprev:
            return PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE
        # a higher round-off floor (states with θ or c spanning many decades): 1e-10 of the
        # volume, no longer falling for three iterations
        self._flat = self._flat + 1 if fnorm > 0.5 * self._rprev else 0
        if fnorm <= 1e-10 * self.volume and self._flat >= 3:
            return PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE
        if it >= max_it:
            return PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
        self._rprev = fnorm
        return 0

    @staticmethod
    def logit_update(w, dw, lim):
        """The Newton change of logit θ taken in θ: θ_new = θ − θ(1−θ)·dw (the same linear step),
        mapped back to w where 0 < θ_new < 1, no more than ``lim`` down; elsewhere dw clipped to
        ±``lim``. A node filling from near-empty needs Δw of tens, which clipped steps in w take
        one ``lim`` per iteration; its linear step in θ lands there at once."""
        theta = 1.0 / (1.0 + np.exp(-w))
        new = theta - theta * (1.0 - theta) * dw
        clipped = np.clip(dw, -lim, lim)
        ok = (new > 0.0) & (new < 1.0) & (dw < 0.0)  # rises only: falls keep the clipped step
        out = clipped.copy()
        w_new = np.log(new[ok]) - np.log1p(-new[ok])
        out[ok] = np.maximum(w[ok] - w_new, -30.0)
        out[ok] = np.minimum(out[ok], clipped[ok])  # never a smaller rise than the clipped step
        return out

    def floor(self, vec, offsets) -> None:
        """Clip logit θ to LOGIT_BOUNDS and ln c to ≥ LOG_C_MIN, in place."""
        arr = vec.getArray()
        for k, n in enumerate(self.names):
            seg = arr[offsets[k]:offsets[k + 1]]
            if n == "w":
                np.clip(seg, *self.LOGIT_BOUNDS, out=seg)
            elif n.startswith("u_"):
                np.maximum(seg, self.LOG_C_MIN, out=seg)

    def _limit(self, dx, x, offsets) -> None:
        """Per-field update limits on the Newton change ``dx`` at ``x``, in place."""
        arr, xarr = dx.getArray(), x.getArray()
        for k, n in enumerate(self.names):
            lim = self.MAX_UPDATE.get(n, self.MAX_UPDATE_LOG_C)
            seg = arr[offsets[k]:offsets[k + 1]]
            if n == "w":
                seg[:] = self.logit_update(xarr[offsets[k]:offsets[k + 1]], seg, lim)
            else:
                np.clip(seg, -lim, lim, out=seg)

    def _try(self, snes, x, dx, lam, trial, b, offsets) -> float:
        """‖F(x − λ dx)‖ with the bounds applied; the point is left in ``trial``."""
        x.copy(trial)
        trial.axpy(-lam, dx)
        self.floor(trial, offsets)
        trial.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        snes.computeFunction(trial, b)
        return b.norm()

    def solve_step(self, problem, funcs, start, restore, what: str) -> int:
        """Plain Newton from the present state; if it fails, again from the same start (``start()``
        puts it back) with backtracking on ‖F‖. Returns all iterations; on failure or a non-finite
        state calls ``restore()`` and raises TransportSolveError (``what`` says which step)."""
        try:
            reason, its = self.solve(problem, funcs)
            if reason <= 0:
                start()
                reason, more = self.solve(problem, funcs, linesearch=True)
                its += more
        except (RuntimeError, PETSc.Error) as exc:  # PETSc error inside the solve
            restore()
            raise TransportSolveError(f"PETSc error: {exc}") from None
        finite = all(np.isfinite(f.x.array).all() for f in funcs)
        finite = self.comm.allreduce(finite, op=MPI.LAND)
        if reason <= 0 or not finite:
            restore()
            why = "non-finite values" if not finite else f"SNES reason {reason} after {its} iterations"
            raise TransportSolveError(f"{what} failed: {why}")
        return its

    def solve(self, problem, funcs, linesearch: bool = False) -> tuple[int, int]:
        """Newton on ``problem`` (a dolfinx NonlinearProblem, MUMPS) from and into ``funcs``,
        optionally with backtracking on ‖F‖; returns (SNES-style reason, iterations)."""
        snes = problem.solver
        x, b, A = problem.x, problem.b, problem.A
        dolfinx.fem.petsc.assign(funcs, x)
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        ksp = snes.getKSP()
        dx = x.duplicate()
        sizes = [self.spaces[n].dofmap.index_map.size_local for n in self.names]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        _, _, _, max_it = snes.getTolerances()
        reason, it = 0, 0
        snes.computeFunction(x, b)
        fnorm = b.norm()
        trial = x.duplicate()
        best, worse = fnorm, 0
        for it in range(max_it + 1):
            reason = self.converged(snes, it, (0.0, 0.0, fnorm))
            if reason != 0:
                break
            # backtracking that finds no new best residual in STALL_ITERATIONS creeps at λ = 1/64
            # and will not converge: give up early so the step is cut (plain Newton may climb
            # for a while before it converges, after a jump of the controls, so it runs on)
            best, worse = (fnorm, 0) if fnorm < best else (best, worse + 1)
            if linesearch and worse >= self.STALL_ITERATIONS:
                reason = PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
                break
            snes.computeJacobian(x, A, A)
            ksp.setOperators(A)
            ksp.solve(b, dx)
            if ksp.getConvergedReason() <= 0:
                reason = PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE
                break
            self._limit(dx, x, offsets)
            # backtracking: accept the first of 1, 1/2, ..., 1/64 of the step that lowers ‖F‖
            # (or the last one tried); near the solution the full step is always taken
            lam = 1.0
            new = self._try(snes, x, dx, lam, trial, b, offsets)
            while linesearch and not (new <= (1 - 1e-4 * lam) * fnorm or lam <= 1 / 64 or new <= 1e-12 * self.volume):
                lam *= 0.5
                new = self._try(snes, x, dx, lam, trial, b, offsets)
            # the change itself below 1e-10 (in log-concentration, logit θ, ψ = Fφ/RT, φ_e in V;
            # after the bounds): converged, whatever round-off floor the residual has here
            step = self.comm.allreduce(float(np.abs(trial.getArray() - x.getArray()).max(initial=0.0)), op=MPI.MAX)
            trial.copy(x)
            fnorm = new
            if step < self.STEP_TOLERANCE:
                reason, it = PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE, it + 1
                break
        dolfinx.fem.petsc.assign(x, funcs)
        for f in funcs:
            f.x.scatter_forward()
        dx.destroy()
        trial.destroy()
        return reason, it
