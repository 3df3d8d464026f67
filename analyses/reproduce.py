"""Run every study the paper's figures need, then draw every figure.

    python -m analyses.reproduce --preset quick --workers 2 --data-dir ../shared/data/mnist-10k
    python -m analyses.reproduce --preset paper --scheduler tcp://head:8786
    python -m analyses.reproduce --preset paper --device cuda --workers 4     # a node of 4 GPUs

The studies, each with the paper's four models (--models paper) at the task's preset: the adding
problem, pixel-by-pixel and permuted MNIST, Penn Treebank characters (and words at the paper preset),
and framewise speech with the 0.01 I IRNN beside them (recording Lyapunov spectra too: 200-frame windows
are long enough for them and the study is short). Each goes to RESULTS/<name>.nc and is resumable
like any study (rerun the same command after a crash); the figures go to RESULTS/figures. Every study
is validated (its data included) before the first one runs.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

from rnn_dynamics.commandline import OneLineParser, fail
from rnn_dynamics.config import StudyConfig

from .cli import check_writable, error_message
from .spectra import add_execution_flags, check_out, executor_for, run_into

#: name -> (task, extra fields), for every preset; the paper preset adds word-level PTB.
STUDIES = {
    "adding": ("adding", {}),
    "mnist": ("mnist", {}),
    "pmnist": ("pmnist", {}),
    "ptb_char": ("ptb", {"task_options": {"level": "char"}}),
    "speech": ("speech", {"models": ["paper", "irnn_scaled"], "lyapunov": True}),
}
PAPER_ONLY = {"ptb_word": ("ptb", {"task_options": {"level": "word"}})}
#: The tiny preset: every study and figure in seconds, to check a set-up (and for the tests).
TINY = {"hidden": 8, "steps": 4, "probe_every": 2, "probe_batch": 2, "probe_test_size": 16}


def studies(preset: str, data_dir: str | None, device: str = "cpu") -> dict[str, StudyConfig]:
    """The validated study of every figure at ``preset``, on ``device``."""
    chosen = {**STUDIES, **(PAPER_ONLY if preset == "paper" else {})}
    configs = {}
    for name, (task, extra) in chosen.items():
        fields = {"models": ["paper"], "data_dir": data_dir, "device": device, **(TINY if preset == "tiny" else {}),
                  **extra}
        configs[name] = StudyConfig.from_preset(task, preset, **fields).validate()
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m analyses.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=["tiny", "quick", "paper"],
                        help="the studies' size (tiny: seconds, to check a set-up)")
    parser.add_argument("--results", default="results/reproduce", help="folder of the studies and figures "
                                                                        "(default results/reproduce)")
    parser.add_argument("--data-dir", default=None, help="data root (MNIST must be there or fetched)")
    parser.add_argument("--device", default="cpu", help="torch device of every study: cpu, cuda or cuda:N (default "
                                                        "cpu; with --workers, cuda gives each worker its own GPU)")
    add_execution_flags(parser)
    args = parser.parse_args(argv)
    results = Path(args.results)
    from rnn_dynamics.sweep import check_disk, check_resources

    with ExitStack() as cleanup:
        try:
            configs = studies(args.preset, args.data_dir, args.device)
            outs = {name: check_writable(results / f"{name}.nc") for name in configs}
            complete = {name for name, config in configs.items()
                        if check_out(outs[name], config.to_dict(), overwrite=False)}
            executor = cleanup.enter_context(executor_for(args, args.device))
            for name, config in configs.items():
                check_resources(config, executor.available_bytes(config))
                check_disk(config, outs[name])
        except ValueError as err:
            fail(error_message(err))
        for name, config in configs.items():
            if name in complete:
                print(f"{outs[name]} already holds this study")
                continue
            print(f"study {name}: {config.task}, preset {args.preset}, {', '.join(config.model_names())}")
            run_into(outs[name], config, executor, args.quiet, args.snapshot_every)
    from figures.__main__ import main as draw_figures

    return draw_figures([str(results), "--out", str(results / "figures")])


if __name__ == "__main__":
    sys.exit(main())
