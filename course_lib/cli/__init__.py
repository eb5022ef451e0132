"""The course's command lines, each a module that `python -m` runs:

    train.py    python -m course_lib.cli.train --preset NAME         train a recipe, write its checkpoint
    sample.py   python -m course_lib.cli.sample --checkpoint DIR     generate text from that checkpoint

They turn arguments into settings and report what happens; the work itself is done by
course_lib.training (recipes, Trainer, checkpoints) and GPT.generate.
"""
