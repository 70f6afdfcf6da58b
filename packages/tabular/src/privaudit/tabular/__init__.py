"""privaudit.tabular"""
