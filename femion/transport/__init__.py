"""Coupled ion transport: the problem, its time stepping, and a case's device.

models (what is solved, as data) · domain (submeshes, measures) · fields (unknowns, BDF history) ·
bfield (B and the Hall parameter) · terms (one residual block each) · constraints (Dirichlet sets,
the nonlinear problem) · newton (the bounded Newton) · problem (TransportProblem composes them) ·
stepping (adaptive time steps) · device (a case → a TransportProblem with its controls).
"""
