"""The console scripts: one module per command, named after it (`cnnlab-train` -> `cli/train.py`).

Each module is a thin `@hydra.main` wrapper: it composes the command's primary config from `conf/` and hands it to a
plain function of the library, through `run_cli` so that a problem the user can fix is one line and exit status 2.
Library code never imports from here.
"""
