"""Plan-view shapes (plan) and the gmsh layer stack (mesh)."""
