"""`cnnlab-occlusion`: the true class's probability as a patch slides over test images
(run=<run dir> or checkpoint=<file>)."""

from cnnlab.cli.analysis import analysis_command

main = analysis_command("occlusion")

if __name__ == "__main__":
    main()
