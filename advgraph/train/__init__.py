"""Algorithm 1 over the Backend protocol: schedules, data order, checkpoints, metrics.

One *step* is one iteration of Algorithm 1: k D-updates, each on a fresh minibatch of m
examples and m noise samples, then one G-update on fresh noise. An *epoch* is one pass over the
(shuffled) training set by the D-updates' minibatches.

Import from the modules; the package itself imports none of them. What a run is built from and
restored with (its directory, context, random streams, schedule, data stream, session, restore)
is in advgraph/run/, below this package and evaluate/, which both use it.

- `hooks`: what a front end is told while training (`TrainingHooks`, `StartInfo`, `NO_HOOKS`,
  `Fanout`)
- `loop`: the training loop (`run_loop`, `Outcome`); `monitor`: Parzen monitoring;
  `checkpoint`: saving; `interrupt`: Ctrl-C handling
- `starting`, `resuming`: the entry points the CLI calls (`start`, `resume`)
- `provenance`: versions and owner recorded in run.json and checkpoints
- `snapshots`: the fixed-noise sample grid written while training
- `tensorboard`: the hooks as TensorBoard event files (`train --tensorboard`)
"""
