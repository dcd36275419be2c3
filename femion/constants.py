"""Physical constants (SI, CODATA via scipy.constants): the one copy every module uses."""

from __future__ import annotations

from scipy import constants as _c

FARADAY: float = _c.physical_constants["Faraday constant"][0]  #: F, C mol⁻¹
GAS_CONSTANT: float = _c.R  #: R, J mol⁻¹ K⁻¹
BOLTZMANN: float = _c.Boltzmann  #: k_B, J K⁻¹
ELEMENTARY_CHARGE: float = _c.e  #: e, C
VACUUM_PERMITTIVITY: float = _c.epsilon_0  #: ε0, F m⁻¹
VACUUM_PERMEABILITY: float = _c.mu_0  #: µ0, H m⁻¹
STEFAN_BOLTZMANN: float = _c.Stefan_Boltzmann  #: σ, W m⁻² K⁻⁴
STANDARD_TEMPERATURE: float = 298.15  #: K, the default temperature of a case
