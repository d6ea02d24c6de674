"""The session layer: a run and what training, evaluation, export and the API all build on
(advgraph.train and advgraph.evaluate sit side by side above it and import neither the other).

Import from the modules; the package imports none of them, so that reading a checkpoint back
(`restore`) loads neither the training loop nor the evaluation.

- `directory`: the run directory (`RunDir`, `list_runs`, `default_root`); `checkpoints`: a
  checkpoint's files, read back and verified; `schemas`: the schemas of the files a run holds;
  `removal`: deleting runs under their locks
- `context`: backend, device and process group (`Context`)
- `rng`: the random streams derived from the seed (`seeds`, `rank_seed`)
- `schedule`: per-update learning rates and momenta (`Schedule`)
- `stream`: the shuffled data order (`DataStream`)
- `session`: a run's working set built from a spec (`Session`, `build_session`, `make_trainer`)
  and the estimate of a training process's peak memory (`training_peak`)
- `restore`: a checkpoint back into a trainer (`restore_run`, `RestoredRun`) or a session
"""
