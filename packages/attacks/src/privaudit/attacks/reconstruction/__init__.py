"""Data reconstruction from transfer-learned classifier heads (Allison & Maciążek, 2025): shadow
heads trained many at once, their weights in a chunked store, a reconstructor network from head
weights to training images, and the min-MSE evaluation (reconstruction TPR / FPR, ROC)."""
