"""A training progress bar that shows what a user watches for: the loss and the throughput."""

from __future__ import annotations

import time

from transformers import TrainerCallback


class LossProgress(TrainerCallback):
    """tqdm bar over optimizer steps; postfix = latest loss, eval loss and tokens/s since the last log."""

    def __init__(self):
        self.bar = None
        self.mark = (0.0, 0)  # (time, tokens seen) at the previous log
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step",
                        dynamic_ncols=True)
        self.mark = (time.perf_counter(), state.num_input_tokens_seen or 0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen or 0
        if "loss" in logs:
            self.postfix["loss"] = f"{logs['loss']:.3f}"
            if now > self.mark[0] and tokens > self.mark[1]:
                self.postfix["tok/s"] = f"{(tokens - self.mark[1]) / (now - self.mark[0]):.0f}"
            self.mark = (now, tokens)
        if "eval_loss" in logs:
            self.postfix["eval_loss"] = f"{logs['eval_loss']:.3f}"
        self.bar.set_postfix(self.postfix, refresh=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
