"""The session layer: a run and what training, evaluation, export and the API all build on.

Import from the modules; the package imports none of them.

- `directory`: the run directory (`RunDir`, `list_runs`, `default_root`); `checkpoints`: a
  checkpoint's files, read back and verified; `schemas`: the schemas of the files a run holds;
  `removal`: deleting runs under their locks
"""
