"""The bottom layer: errors, small statistics, catalogues of module kinds, bundled data."""
