"""A model, a loss and data as a function of one flat parameter vector."""
