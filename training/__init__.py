"""Training reverse models (installed as ``ledom_reason.training``)."""
