"""Lines, planes, symmetry, connectivity and restarts around trained points."""
