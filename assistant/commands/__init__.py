"""One module per ``assistant`` command, each with ``run(args)``; ``assistant/cli.py`` holds the
one parser and imports a command's module only when it runs."""
