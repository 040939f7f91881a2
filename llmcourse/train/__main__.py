"""``python -m llmcourse.train``: see ``llmcourse.train.cli``."""

from llmcourse.train.cli import main

main()
