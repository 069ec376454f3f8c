"""`cnnlab-activations`: a conv layer's feature maps for one test image (run=<run dir> or checkpoint=<file>)."""

from cnnlab.cli.analysis import analysis_command

main = analysis_command("activations")

if __name__ == "__main__":
    main()
