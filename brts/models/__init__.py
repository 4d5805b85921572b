"""The models: loading a model or a pair (`load`), the built-in pair as shipped (`builtin`) and the recipe that
builds it (`recipe`, at the thread count `build_threads` chooses), GGUF import (`gguf`), random pairs for the GPU and
long-vocabulary checks (`random_pairs`), the character tokenizer (`tokenizer`) and a run's cost from its config
alone (`estimate`)."""
