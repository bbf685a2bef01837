"""Studies: orchestration on top of the library (one module per study)."""
