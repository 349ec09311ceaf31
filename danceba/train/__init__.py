"""Generic, model-agnostic training infrastructure (one concept per module).

``loop.train`` is the entry point; ``train_config.TrainConfig`` and ``train_config.OptimConfig`` configure it;
``seeding``, ``sampler``, ``checkpoint``, ``distributed``, ``precision``, ``history``, ``best_metric``,
``step_stats`` and ``batches`` are its parts. It imports no model code: the two models' trainers are
:mod:`danceba.trainers`.
"""
