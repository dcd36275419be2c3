"""Coupled ion transport: the problem, its time stepping, and a case's device."""
