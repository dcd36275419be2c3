"""Physical laws and data, pure numpy|UFL: kinetics, host thermodynamics, Lorentz terms, optics, materials.

Laws chosen by name (rate laws, solid diffusivities, closure step laws) are :class:`registry.Law`
entries that declare their parameters; the case schema takes its allowed names from them.
"""
