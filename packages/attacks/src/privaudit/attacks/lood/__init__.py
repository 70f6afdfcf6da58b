"""LOOD: leave-one-out distinguishability (Ye, Borovykh, Hayou, Shokri, ICLR 2024) under the
NNGP/NTK of fully connected networks, for every record at the price of one factorisation."""

from privaudit.attacks.lood.kernels import fc_kernel

__all__ = ["fc_kernel"]
