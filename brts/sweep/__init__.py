"""Optuna sweeps over the method's settings (N and lambda by default): `brts sweep run/status/show`.

Where things are, for a sweep named NAME in the run store STORE:

- `STORE/sweeps/NAME/study.log`: the study, an Optuna JournalStorage file (safe under several local processes;
  opens with `optuna-dashboard STORE/sweeps/NAME/study.log` or `optuna.load_study(study_name=NAME,
  storage=JournalStorage(JournalFileBackend(path)))`). Another storage is given by `--storage` or the spec's
  `storage`: an RDB URL (`sqlite:///...`, `postgresql://...`) shares one study between machines (stale trials
  of lost workers are found by heartbeat there), `redis://...` a Redis journal, any other text a journal file.
- `STORE/sweeps/NAME/<run_id>/`: the trials' runs, ordinary run folders (config, record, metrics, checkpoints).
  A run that is finished anywhere in the store (an experiment's `STORE/<experiment>/<run_id>/` or another
  sweep's) is reused, not trained again.
- `STORE/sweeps/NAME/.workers/`, `.ask.lock`: the lock files of live worker processes and of asking for trials.

The study is named NAME; its directions and metric names follow the spec's objectives; its parameters are
named by their field (`teacher_samples` is N, `aux_weight` is lambda). A trial trains the spec's `arm`, or
every one of its `arms`, once per seed. Each trial's user attributes: `seeds`, `arms` (with several),
`run_id` and `run_path` (the first run), `run_ids` and `run_paths` (every run, arm-major, in seed order),
`reused` (list of bools: the run was finished already, by an experiment or an earlier trial), `seed_values`
({metric: [value per seed]}, the mean over the arms with several), `arm_values` ({metric: {arm: [value per
seed]}}, with several arms), `seed_sd` ({metric: sd over seeds}), and, when they apply, `error` (FAIL),
`pruned_step`, `pruned_seed` and `pruned_arm` (PRUNED), `retry_of` (the trial number it repeats after its
worker died or was interrupted). The study's user
attributes hold the sweep spec (`brts:spec`) and what identifies it (`brts:identity`).
"""
