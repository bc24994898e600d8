"""Point-spread functions: Gaussian kernels, the instrument PSFs of HST (TinyTim, empirical) and the
degradation (convolution, noise) that the model was trained to undo."""
