"""privaudit.image: PANORAMIA audit of image classifiers with a StyleGAN2-ADA-style generator."""
