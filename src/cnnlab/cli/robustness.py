"""`cnnlab-robustness`: test accuracy under FGSM and PGD over a list of L-inf budgets
(run=<run dir> or checkpoint=<file>)."""

from cnnlab.cli.analysis import analysis_command

main = analysis_command("robustness")

if __name__ == "__main__":
    main()
