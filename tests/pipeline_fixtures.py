"""The tiny RLHF pipeline's command-line overrides (one arm, one task, two reward-model and PPO
seeds, a few steps of everything), shared by the tests that run the pipeline or start from its
workdir."""

TINY = ["--config=configs/rlhf_pipeline.py:quick", "--config.arms=('ur5',)", "--config.tasks=('reach',)",
        "--config.sft.dataset.variant=tiny", "--config.sft.train.steps=20", "--config.sft.train.log_every=10",
        "--config.sft.model.hidden=(16,)", "--config.sft.dagger.rounds=1", "--config.sft.dagger.episodes_per_task=1",
        "--config.sft.dagger.steps_per_round=5", "--config.sft.eval.n_episodes=1",
        "--config.sft.eval.embodiments=('ur5',)", "--config.sft.eval.tasks=('reach',)",
        "--config.rollouts.episodes_per_combo=16", "--config.rollouts.noise_levels=(0.1,0.5)",
        "--config.rollouts.speed_factors=(0.5,)", "--config.rollouts.goal_shifts=(0.1,)",
        "--config.reward_model.seeds=(0,1)", "--config.ppo_seeds=(0,1)", "--config.secondary_ppo_seeds=(0,)",
        "--config.iterate.episodes_per_policy=4",
        "--config.reward_model.dataset=tiny", "--config.reward_model.segment_length=10",
        "--config.reward_model.stride=5", "--config.reward_model.n_train_pool=60", "--config.reward_model.n_val=20",
        "--config.reward_model.n_test=20", "--config.reward_model.n_values=(10,20,30)",
        "--config.reward_model.total_steps=20", "--config.reward_model.chunk_steps=20",
        "--config.reward_model.eval_every=10", "--config.reward_model.model_sizes=((16,),)",
        "--config.ppo.ppo.num_envs=4", "--config.ppo.ppo.num_steps=10", "--config.ppo.ppo.num_minibatches=2",
        "--config.ppo.ppo.update_epochs=1", "--config.ppo.ppo.num_updates=2", "--config.ppo.kl.total_updates=2",
        "--config.ppo.log_every=1", "--config.ppo.ppo.value_warmup_updates=1",
        "--config.ppo.ppo.value_hidden=(16,)", "--config.dpo.train.steps=4", "--config.dpo.train.log_every=2",
        "--config.dpo.train.batch_size=8", "--config.dpo.preferences.n_train=60", "--config.dpo.preferences.n_val=20",
        "--config.dpo.preferences.n_test=20", "--config.dpo.preferences.segment_length=10",
        "--config.dpo.preferences.stride=5", "--config.dpo.sft.eval.n_episodes=1", "--config.eval.n_episodes=3"]
