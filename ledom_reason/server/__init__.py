"""ledom_reason.server (in progress)."""
