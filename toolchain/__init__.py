"""spikeforge: compile trained spiking and ANN models to neuromorphic chips, emulate, verify and profile."""

__version__ = "0.1.0"
