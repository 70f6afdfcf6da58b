"""privaudit.core: audit statistics, scores tables, reports and the `privaudit` CLI."""
