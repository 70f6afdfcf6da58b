"""Model inversion with a pseudo-label-guided conditional GAN (PLG-MI, Yuan et al., AAAI 2023):
`audit-image invert`."""
