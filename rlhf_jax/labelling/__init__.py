"""Human labelling: clips of segment pairs, the labelling queue, durable label files."""
