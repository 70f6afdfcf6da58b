"""`audit-image reconstruct`: data reconstruction from transfer-learned classifier heads over a
frozen image backbone (Allison & Maciążek, 2025)."""
