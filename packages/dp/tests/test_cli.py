"""dp-train without a task package (the engine alone): one line naming what to install."""

from privaudit.dp.cli import main


def test_dp_train_without_tasks_names_the_packages_to_install(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install privaudit-image" in err and "privaudit-text" in err
