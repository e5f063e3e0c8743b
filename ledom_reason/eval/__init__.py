"""ledom_reason.eval (in progress)."""
