# What every repl-mm config adds to its framework's runtime: the plugin import and our hooks.
# None of the frameworks' default_runtime.py sets custom_hooks, so this base adds them without a
# clash. A config that sets custom_hooks itself replaces this list (copy what it keeps).
custom_imports = dict(imports=['repl_mm'], allow_failed_imports=False)

custom_hooks = [
    # the replacement plan in every checkpoint's meta (a checkpoint of another plan is refused)
    dict(type='ReplCheckpointHook'),
    # torch / numpy / random RNG states in the checkpoint: --resume continues the same run
    dict(type='RNGStateHook'),
    # peak memory (CUDA or CPU), parameter counts and the RepL coefficients in every log line
    dict(type='TrainingCostHook'),
    # stop with a clear message when a coefficient or the loss becomes non-finite
    dict(type='ReplNaNGuardHook'),
]
