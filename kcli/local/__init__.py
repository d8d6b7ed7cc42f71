"""Local clusters: broker processes on this machine and the registry that finds them."""
