"""One training run's step: the trainer and its one set-up (`trainer`), the teacher-context branch as stages
(`teacher_branch`), batched and streamed log-probs (`scoring`, `logprobs`), the accuracy of samples
(`validation`) and the rank arithmetic of data-parallel training (`distributed`)."""
