def test_imports():
    import privaudit.core.cli as cli

    assert cli.main([]) == 0
