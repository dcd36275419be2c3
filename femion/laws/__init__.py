"""Physical laws and data, pure numpy|UFL: kinetics, host thermodynamics, Lorentz terms, optics, materials."""
