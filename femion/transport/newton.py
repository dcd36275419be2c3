"""The bounded Newton solver of a transport step: MUMPS or a field-split GMRES (linear.py),
per-field update limits, a logit update taken in θ, bounds on logit θ and ln c, optional
backtracking on ‖F‖, and a convergence test that knows the residual's round-off floor."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from femion._dolfinx import MPI, PETSc, dolfinx
from femion.transport.linear import clear_options, set_field_split


class TransportSolveError(RuntimeError):
    """Newton failed (or gave a non-finite state) for a transport step."""


class BoundedNewton:
    """Newton on the unknowns ``names`` (in block order); ``volume`` = |Ω| sets the absolute scale;
    ``linear_solver``: ``direct`` (MUMPS) or ``iterative`` (linear.py), as the problems were made."""

    #: largest Newton change per iteration: log-concentrations and logit(θ) by 2 (a factor e²
    #: in c), ψ by 10 (0.26 V), φ_e by 0.5 V. Unclipped Newton on log variables overshoots
    #: when a concentration must rise by decades in a step, then creeps back one unit per step.
    MAX_UPDATE: ClassVar[dict[str, float]] = {"w": 2.0, "w_s": 2.0, "psi": 10.0, "phi_e": 0.5, "mu": 10.0}
    #: the unknowns that are logits of a filling fraction (the film's, and a shell's surface filling)
    LOGIT_FIELDS = ("w", "w_s")
    MAX_UPDATE_LOG_C = 2.0
    STEP_TOLERANCE = 1e-10
    RESIDUAL_TOLERANCE = 1e-14
    #: modified Newton: within a step the factorisation is kept while the changes shrink by this
    #: factor or more per iteration. Off (0): with 0.3 a trace-ion front at cell Péclet 25 overshot
    #: by 7 % instead of 3.4 % (test_drift_dominated_transport_stays_positive), not yet understood
    REUSE_CONTRACTION = 0.0
    STALL_ITERATIONS = 6
    #: Bounds of logit θ and of ln(c/c_ref): θ ≥ 1e-26, 1 − θ ≥ 1e-13 (1 − θ must stay
    #: representable beside θ ≈ 1 in double precision), c ≥ 1e-26 c_ref. Under a drive of volts a
    #: depleted spot empties in finite time (the exit rate is first order in θ, times
    #: exp(α_a F η/RT)) and implicit steps would carry its logit to −∞; 1e-26 of the capacity
    #: is ~1e-11 ions in a 1 mm² × 500 nm cell, so the bound changes no total measurably
    #: (the conservation error in the summary includes it).
    LOGIT_BOUNDS = (-25.0, 25.0)
    LOG_C_MIN = -60.0

    def __init__(self, names, spaces, comm, volume: float, linear_solver: str = "direct"):
        self.names, self.spaces, self.comm, self.volume = list(names), spaces, comm, volume
        self.linear_solver = linear_solver
        self.jacobians = 0  # Jacobians assembled (and factorised) so far
        self.linear_solves = 0  # linear solves so far, and their Krylov iterations (iterative only)
        self.krylov_iterations = 0
        self.linear_seconds = 0.0  # wall time in the linear solves (factorisation or PC setup included)

    def converged(self, snes, it, norms):
        """Newton test on ‖F‖ of the free dofs: 1e-13 relative, or RESIDUAL_TOLERANCE·|Ω| absolute
        after at least one iteration (1e-14·|Ω| before any).

        Residual rows are changes of θ or c/c_ref times volume, so RESIDUAL_TOLERANCE·|Ω| is a
        change of 1e-14 of the domain's capacity in one step (a trace ion's rows are as small as
        its concentration, so a looser test lets its fronts drift); the species balance is made
        exact after the step (conservation.py). Round-off in rows with large cancelling terms
        (drift against diffusion beside an emptied end) floors near 1e-10·|Ω|: there the change
        test ends it.
        """
        fnorm = norms[2]
        rtol, atol, _, max_it = snes.getTolerances()
        if it == 0:
            self._r0 = fnorm
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS if fnorm <= atol else 0
        if not np.isfinite(fnorm):
            return PETSc.SNES.ConvergedReason.DIVERGED_FUNCTION_NANORINF
        if fnorm <= max(atol, self.RESIDUAL_TOLERANCE * self.volume):
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_ABS
        if fnorm <= rtol * self._r0:
            return PETSc.SNES.ConvergedReason.CONVERGED_FNORM_RELATIVE
        if it >= max_it:
            return PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
        return 0

    @staticmethod
    def logit_update(w, dw, lim):
        """The Newton change of logit θ taken in θ: θ_new = θ − θ(1−θ)·dw (the same linear step),
        mapped back to w where 0 < θ_new < 1 and θ rises; elsewhere dw clipped to ±``lim``. A node
        filling from near-empty needs Δw of tens, which clipped steps in w take one ``lim`` per
        iteration; its linear step in θ lands there at once."""
        theta = 1.0 / (1.0 + np.exp(-w))
        new = theta - theta * (1.0 - theta) * dw
        clipped = np.clip(dw, -lim, lim)
        # rises only: a fall whose linear step in θ lands near 0 would jump to the bound, and a
        # node whose solution lies between then cycles (down to the bound, up by steps in θ)
        ok = (new > 0.0) & (new < 1.0) & (dw < 0.0)
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
            if n in self.LOGIT_FIELDS:
                np.clip(seg, *self.LOGIT_BOUNDS, out=seg)
            elif n.startswith("u_"):
                np.maximum(seg, self.LOG_C_MIN, out=seg)

    def _limit(self, dx, x, offsets) -> bool:
        """Per-field update limits on the Newton change ``dx`` at ``x``, in place; True if any
        change was limited (on any rank): Newton is then far from its quadratic regime."""
        arr, xarr = dx.getArray(), x.getArray()
        limited = False
        for k, n in enumerate(self.names):
            lim = self.MAX_UPDATE.get(n, self.MAX_UPDATE_LOG_C)
            seg = arr[offsets[k]:offsets[k + 1]]
            if n in self.LOGIT_FIELDS:
                new = self.logit_update(xarr[offsets[k]:offsets[k + 1]], seg, lim)
                limited = limited or bool(np.any(np.abs(seg) > lim))
                seg[:] = new
            else:
                limited = limited or bool(np.any(np.abs(seg) > lim))
                np.clip(seg, -lim, lim, out=seg)
        return bool(self.comm.allreduce(limited, op=MPI.LOR))

    def active_set(self, x, b, diag, offsets) -> np.ndarray:
        """Owned dofs held at a bound that Newton would push further out: logit θ at
        LOGIT_BOUNDS or ln c at LOG_C_MIN, where the one-dof Newton step −F_i/J_ii points out
        of the box. Their rows become x_i = bound in the linear solve and their residual leaves
        the norm (a reduced-space active-set method, as PETSc's SNESVINEWTONRSLS): the bound is a
        constraint the state satisfies, not an equation left unsolved. Without this a node
        emptied under a drive keeps a residual the floor cannot remove, Newton converges only
        linearly (the node's neighbours see it leave the box each iteration) and the step test
        needs five iterations per step."""
        xa, ba, da = x.getArray(readonly=True), b.getArray(readonly=True), diag.getArray(readonly=True)
        active = np.zeros(xa.size, dtype=bool)
        for k, n in enumerate(self.names):
            if n in self.LOGIT_FIELDS:
                lo, hi = self.LOGIT_BOUNDS
            elif n.startswith("u_"):
                lo, hi = self.LOG_C_MIN, np.inf
            else:
                continue
            s = slice(offsets[k], offsets[k + 1])
            push = ba[s] * da[s]  # > 0: the Newton change −F/J lowers the unknown
            active[s] = ((xa[s] <= lo) & (push > 0)) | ((xa[s] >= hi) & (push < 0))
        return active

    def change(self, new, old, offsets) -> float:
        """Largest change of the state between two iterates (all ranks), in what each unknown
        stands for: θ for logit θ, c/c_ref for ln(c/c_ref), the unknown itself for ψ and φ_e.
        In the logit a node emptied to θ ~ 1e-10 can swing by units without any consequence (its
        Jacobian column is ~θ): a test on the logit never passes there, one on θ does."""
        worst = 0.0
        for k, n in enumerate(self.names):
            a, b = new[offsets[k]:offsets[k + 1]], old[offsets[k]:offsets[k + 1]]
            if n in self.LOGIT_FIELDS:
                d = 1.0 / (1.0 + np.exp(-a)) - 1.0 / (1.0 + np.exp(-b))
            elif n.startswith("u_"):
                d = np.exp(a) - np.exp(b)
            else:
                d = a - b
            worst = max(worst, float(np.abs(d).max(initial=0.0)))
        return self.comm.allreduce(worst, op=MPI.MAX)

    def _norm(self, b, free) -> float:
        """‖F‖ over the free dofs (all ranks)."""
        r = b.getArray(readonly=True)[free]
        return float(np.sqrt(self.comm.allreduce(float(r @ r), op=MPI.SUM)))

    def _try(self, snes, x, dx, lam, trial, b, offsets, free) -> float:
        """‖F(x − λ dx)‖ over the free dofs with the bounds applied; the point is left in ``trial``."""
        x.copy(trial)
        trial.axpy(-lam, dx)
        self.floor(trial, offsets)
        trial.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        snes.computeFunction(trial, b)
        return self._norm(b, free)

    def solve_step(self, problem, funcs, start, restore, what: str, budget: int | None = None) -> int:
        """Newton from the present state (modified Newton while it contracts); if it fails, again
        from the same start (``start()`` puts it back) with a fresh Jacobian every iteration and
        backtracking on ‖F‖. With a ``budget`` (a caller that can take a smaller step instead):
        at most that many iterations and no second attempt. Returns all iterations; on failure or
        a non-finite state calls ``restore()`` and raises TransportSolveError (``what`` says which
        step)."""
        try:
            reason, its = self.solve(problem, funcs, max_iterations=budget)
            if reason <= 0 and budget is None:
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

    def _fresh_jacobian(self, snes, x, b, A, diag, offsets, first_row):
        """Assemble the Jacobian at x, take its diagonal, hold the active set; returns the free mask."""
        snes.computeJacobian(x, A, A)
        self.jacobians += 1
        A.getDiagonal(diag)
        free = ~self.active_set(x, b, diag, offsets)
        held = np.flatnonzero(~free)
        if self.comm.allreduce(held.size, op=MPI.SUM):
            A.zeroRows((first_row + held).astype(PETSc.IntType), diag=1.0)
        return free

    def solve(self, problem, funcs, linesearch: bool = False, max_iterations: int | None = None) -> tuple[int, int]:
        """Newton on ``problem`` (a dolfinx NonlinearProblem) from and into ``funcs``,
        optionally with backtracking on ‖F‖; returns (SNES-style reason, iterations).

        Each iteration: the active set (:meth:`active_set`) held, the linear solve, the per-field
        limits, the bounds. The Jacobian and its LU factors are those of an earlier iterate of the
        step while the changes contract by at least REUSE_CONTRACTION per iteration (modified
        Newton, as CVODE and IDA do); otherwise, and always with backtracking, the Jacobian at the
        present iterate. Each step starts from the Jacobian at its first iterate, so a run resumed
        from a checkpoint takes exactly the iterations the uninterrupted run took.
        Converged (:meth:`converged`) on the residual of the free dofs, or when the change falls
        below STEP_TOLERANCE, or when the contraction of the changes says the next one would
        (‖Δ_k‖·ρ/(1−ρ), ρ = ‖Δ_k‖/‖Δ_{k−1}‖, the remaining-error estimate of IDA and CVODE)."""
        snes = problem.solver
        x, b, A = problem.x, problem.b, problem.A
        dolfinx.fem.petsc.assign(funcs, x)
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        ksp = snes.getKSP()
        dx, trial = x.duplicate(), x.duplicate()
        sizes = [self.spaces[n].dofmap.index_map.size_local for n in self.names]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        first_row = x.getOwnershipRange()[0]
        _, _, _, max_it = snes.getTolerances()
        if max_iterations is not None:
            max_it = min(max_it, max_iterations)
        reason, it = 0, 0
        snes.computeFunction(x, b)
        diag = x.duplicate()
        free = self._fresh_jacobian(snes, x, b, A, diag, offsets, first_row)
        split_options = None
        if self.linear_solver == "iterative" and not getattr(problem, "femion_split", False):
            split_options = set_field_split(ksp, self.names, offsets, first_row)  # once per problem
            problem.femion_split = True
        fresh = True  # A holds the Jacobian at the present iterate
        stale = False  # the next iteration needs the Jacobian at its iterate
        step_prev = np.inf
        for it in range(max_it + 1):
            # judged with the active set the last change was made with: re-deciding it at the
            # new point can free a node at its bound whose change moves the floating potential
            # levels, and Newton then cycles between two points, one of them converged
            fnorm = self._norm(b, free)
            if it == 0:
                best, worse = fnorm, 0
            reason = self.converged(snes, it, (0.0, 0.0, fnorm))
            if reason == 0 and it >= max_it:
                reason = PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
            if reason != 0:
                break
            # no new best residual in STALL_ITERATIONS: backtracking creeps at λ = 1/64, plain
            # Newton cycles (a node stepping ±MAX_UPDATE in turn); neither will converge, so give
            # up early: plain Newton for the backtracking one, that one for a smaller step. Plain
            # Newton may climb for a while after a jump of the controls, so it is given twice as long
            best, worse = (fnorm, 0) if fnorm < best else (best, worse + 1)
            if worse >= self.STALL_ITERATIONS * (1 if linesearch else 2):
                reason = PETSc.SNES.ConvergedReason.DIVERGED_MAX_IT
                break
            # the Jacobian at this iterate when asked for (below), or when the old factors hold
            # other rows on their bounds than this iterate would
            if stale or (not fresh and not np.array_equal(free, ~self.active_set(x, b, diag, offsets))):
                free = self._fresh_jacobian(snes, x, b, A, diag, offsets, first_row)
                fresh, stale = True, False
                fnorm = self._norm(b, free)
            b.getArray()[~free] = 0.0  # held rows: their change is 0, they stay on the bound
            t0 = time.perf_counter()
            ksp.setOperators(A)  # refactorised only if A changed
            ksp.solve(b, dx)
            self.linear_seconds += time.perf_counter() - t0
            self.linear_solves += 1
            self.krylov_iterations += ksp.getIterationNumber()
            if split_options is not None:  # the inner solvers have read their options now
                clear_options(split_options)
                split_options = None
            if ksp.getConvergedReason() <= 0:
                reason = PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE
                break
            limited = self._limit(dx, x, offsets)
            # backtracking: accept the first of 1, 1/2, ..., 1/64 of the step that lowers ‖F‖
            # (or the last one tried); near the solution the full step is always taken
            lam = 1.0
            new = self._try(snes, x, dx, lam, trial, b, offsets, free)
            while linesearch and not (new <= (1 - 1e-4 * lam) * fnorm or lam <= 1 / 64 or new <= 1e-12 * self.volume):
                lam *= 0.5
                new = self._try(snes, x, dx, lam, trial, b, offsets, free)
            # the change itself (in θ, c/c_ref, ψ = Fφ/RT, φ_e in V: :meth:`change`; after the
            # bounds) below STEP_TOLERANCE, or contracting so fast that the next one would be:
            # converged, whatever round-off floor the residual has here
            step = self.change(trial.getArray(readonly=True), x.getArray(readonly=True), offsets)
            trial.copy(x)
            rho = step / step_prev
            step_prev = step
            used_fresh, fresh = fresh, False
            remaining = step * rho / (1.0 - rho) if lam == 1.0 and 0.0 < rho < 1.0 else np.inf
            if step < self.STEP_TOLERANCE or remaining < self.STEP_TOLERANCE:
                reason, it = PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE, it + 1
                break
            # far from the solution (a limited change), or an old Jacobian that no longer
            # contracts well: the next iteration (if there is one) takes the one at its iterate
            stale = linesearch or limited or (not used_fresh and rho > self.REUSE_CONTRACTION)
        dolfinx.fem.petsc.assign(x, funcs)
        for f in funcs:
            f.x.scatter_forward()
        for v in (dx, trial, diag):
            v.destroy()
        return reason, it
