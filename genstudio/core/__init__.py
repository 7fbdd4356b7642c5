"""GUI-free core: plugins, configs, jobs, runs, data, nets, diffusion math and metrics."""
