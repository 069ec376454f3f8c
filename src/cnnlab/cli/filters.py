"""`cnnlab-filters`: the learned kernels of conv1 and/or conv2 (run=<run dir> or checkpoint=<file>)."""

from cnnlab.cli.analysis import analysis_command

main = analysis_command("filters")

if __name__ == "__main__":
    main()
