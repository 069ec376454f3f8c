"""Run directories: where a configuration's results live, and the files inside them."""
