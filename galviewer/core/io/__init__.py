"""Input and output: HST FITS images (FLT/FLC, DRZ/DRC, plain), chip mosaics, stamps, regions, WCS grids,
cosmic-ray cleaning and the restored stamp's FITS file.  Never imports the restoration layer."""
