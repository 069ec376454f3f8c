"""`cnnlab-attributions`: saliency, Integrated Gradients and occlusion maps with their sanity checks
(run=<run dir> or checkpoint=<file>)."""

from cnnlab.cli.analysis import analysis_command

main = analysis_command("attributions")

if __name__ == "__main__":
    main()
