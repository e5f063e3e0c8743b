"""ledom_reason.search (in progress)."""
