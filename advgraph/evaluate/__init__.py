"""Evaluating a trained run: `likelihood` (eval --parzen, over advgraph.parzen), `quality` with
`classifier` and `feature_metrics` (FID, PRDC, classifier score), `theory` (Figure 1's checks),
`kmeans` (the k-means baseline), `interpolation`, `reports` (eval/*.json, metrics.jsonl) and
`evaluation` (what `advgraph eval` runs, over several checkpoints)."""
