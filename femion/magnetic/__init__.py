"""Magnetic flux density of sheet currents."""
