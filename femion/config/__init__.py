"""Case files: the schema, units at the edges, loading and checks. No DOLFINx here."""
