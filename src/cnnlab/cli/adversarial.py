"""`cnnlab-adversarial`: images grown by gradient ascent that the model takes for a class
(run=<run dir> or checkpoint=<file>)."""

from cnnlab.cli.analysis import analysis_command

main = analysis_command("adversarial")

if __name__ == "__main__":
    main()
