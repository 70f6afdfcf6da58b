"""privaudit.attacks"""
