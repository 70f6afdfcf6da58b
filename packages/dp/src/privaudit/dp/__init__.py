"""privaudit.dp"""
