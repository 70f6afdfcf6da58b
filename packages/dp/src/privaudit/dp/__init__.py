"""privaudit.dp: DP-SGD with ghost clipping and book-keeping, Poisson sampling and Opacus accountants."""

from privaudit.dp.errors import DPError
from privaudit.dp.private import make_private

__all__ = ["DPError", "make_private"]
