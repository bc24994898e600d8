"""Simulation: the synthetic demo field and realistic GalSim galaxies."""
