"""The `sqjax` command: list, run and resume pipeline stages, run the demo, write reports.

User errors (SqjaxError, bad options) print one line on stderr and exit non-zero; any other
exception is a bug and keeps its traceback. Heavy modules are imported inside commands so
`sqjax --help` is instant.
"""

from __future__ import annotations

import logging
import sys

import click

from sqjax.errors import SqjaxError

DEMO_RESOURCE = "resources/configs/demo.yaml"


class _Cli(click.Group):
    """A group whose errors are one line, without Click's usage block or a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx else "sqjax"
            _fail(f"{e.format_message()} (see `{cmd} --help`)", 2)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except SqjaxError as e:
            _fail(str(e), 1)
        except KeyboardInterrupt:
            _fail("interrupted; rerun the same command to resume", 130)
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _setup_jax() -> None:
    from sqjax import compile_cache

    compile_cache.enable()


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


_config_opt = click.option(
    "--config",
    "--set-file",
    "config_path",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False),
    help="YAML run config; repeat it (or use --set-file FILE) to add overlays, each later file "
    "deep-merged over the ones before it, e.g. --config configs/paper/scalequest.yaml "
    "--config configs/paper/v5e-8.yaml.",
)
_set_opt = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (value parsed as YAML), e.g. "
    "--set gen_questions.temperature=0.8. Repeatable.",
)


def _dist_opts(f):
    """--coordinator/--num-processes/--process-id: join a multi-process run (sqjax.distributed)."""
    f = click.option("--process-id", type=int, help="This process's id in a multi-process run.")(f)
    f = click.option("--num-processes", type=int, help="Processes in a multi-process run.")(f)
    return click.option(
        "--coordinator",
        metavar="HOST:PORT",
        help="Coordinator of a multi-process run (not needed on a TPU VM slice, which is detected).",
    )(f)


def _join(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    from sqjax import distributed

    distributed.initialize(coordinator, num_processes, process_id)


_out_opt = click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False),
    help="Run directory (default: run_dir from the config).",
)


@click.group(name="sqjax", cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """ScaleQuest math question synthesis, end to end, in JAX.

    Every stage writes RUN/<stage>/ and resumes where it stopped when rerun.
    """


@cli.command("stages")
def list_stages() -> None:
    """List the pipeline stages in order."""
    from sqjax.stages import STAGES

    for stage in STAGES:
        click.echo(f"{stage.name:<15} {stage.description}")


_check_fit_opt = click.option(
    "--check-fit",
    "check_fit",
    metavar="TOPOLOGY",
    help="Before loading any weights, compile the stages' programs for this TPU slice "
    "(e.g. v5e-8; auto: the slice this runs on) and stop if one does not fit (as `sqjax plan`).",
)


def _check_fit(cfg, topology: str | None, stage_names) -> None:
    """Stops with one line per program that does not fit `topology`."""
    if topology is None:
        return
    from sqjax.plan import plan
    from sqjax.plan.report import failure_lines

    if topology == "auto":
        from sqjax.plan.topology import local_topology

        topology = local_topology()
    failures = failure_lines(plan(cfg, topology, stage_names, log=_log_info))
    if failures:
        raise SqjaxError(f"--check-fit {topology}: " + "; ".join(failures))


def _log_info(message: str) -> None:
    logging.getLogger("sqjax.plan").info(message)


@cli.command("stage")
@click.argument("name")
@_config_opt
@_set_opt
@_out_opt
@click.option(
    "--restart",
    is_flag=True,
    help="Move the stage's existing output aside (RUN/<stage>.old-<time>) and start "
    "over; needed after changing its config.",
)
@_dist_opts
@_check_fit_opt
def stage(
    name: str,
    config_path: tuple[str, ...],
    overrides: tuple[str, ...],
    run_dir: str | None,
    restart: bool,
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    check_fit: str | None,
) -> None:
    """Run (or resume) one stage NAME."""
    from sqjax.paths import as_path
    from sqjax.pipeline.runner import run_stage
    from sqjax.registry import load_config
    from sqjax.stages import STAGES

    STAGES.get(name)
    cfg = load_config(config_path, list(overrides))
    _setup_logging()
    _check_fit(cfg, check_fit, [name])
    _setup_jax()
    _join(coordinator, num_processes, process_id)
    m = run_stage(cfg, name, restart=restart, run_dir=run_dir)
    click.echo(f"{name}: {m.get('rows_out', 0):,} rows in {as_path(run_dir or cfg.run_dir) / name}")


@cli.command("run")
@_config_opt
@_set_opt
@_out_opt
@click.option("--from", "first", metavar="NAME", help="First stage to run.")
@click.option("--to", "last", metavar="NAME", help="Last stage to run.")
@_dist_opts
@_check_fit_opt
def run(
    config_path: tuple[str, ...],
    overrides: tuple[str, ...],
    run_dir: str | None,
    first: str | None,
    last: str | None,
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    check_fit: str | None,
) -> None:
    """Run the stages in order, skipping finished ones, then write the report."""
    from sqjax.registry import load_config

    cfg = load_config(config_path, list(overrides))
    if check_fit:
        _setup_logging()
        _check_fit(cfg, check_fit, _stage_range(cfg, first, last))
    _setup_jax()
    _join(coordinator, num_processes, process_id)
    _run_all(cfg, run_dir, first, last)


def _stage_range(cfg, first: str | None, last: str | None) -> list[str]:
    names = [n for n in cfg.stages.names() if n not in cfg.skip_stages]
    i = names.index(first) if first in names else 0
    j = names.index(last) + 1 if last in names else len(names)
    return names[i:j]


@cli.command("demo")
@_out_opt
@_set_opt
def demo(run_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Run the whole pipeline with the built-in small demo config (SmolLM2-135M, CPU)."""
    from importlib import resources

    from sqjax.registry import parse_config

    text = resources.files("sqjax").joinpath(DEMO_RESOURCE).read_text(encoding="utf-8")
    _setup_jax()
    _run_all(parse_config(text, "sqjax/" + DEMO_RESOURCE, list(overrides)), run_dir, None, None)


@cli.command("plan")
@_config_opt
@_set_opt
@click.option("--topology", required=True, metavar="NAME", help="TPU slice, e.g. v5e-8.")
@click.option(
    "--stage",
    "stage_names",
    multiple=True,
    metavar="NAME",
    help="Plan only this stage (repeatable; default: every stage).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the plan as JSON."
)
@click.option(
    "--fix-tries",
    default=4,
    show_default=True,
    help="Variants compiled per program that does not fit (0: report only).",
)
@click.option(
    "--write-overrides",
    "overrides_path",
    type=click.Path(dir_okay=False),
    help="Write the fixes found (per-stage mesh, remat, accumulation, batch; stages nothing "
    "fits go to skip_stages) as a YAML overlay for --config, over the overlays given.",
)
def plan_cmd(
    config_path: tuple[str, ...],
    overrides: tuple[str, ...],
    topology: str,
    stage_names: tuple[str, ...],
    json_path: str | None,
    fix_tries: int,
    overrides_path: str | None,
) -> None:
    """Compile every stage's device programs for a TPU slice (no TPU needed) and report
    memory per device, fit, FLOPs, bytes and estimated time; exits 1 if a program does not fit."""
    import os
    from pathlib import Path

    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # compile for the slice, run nothing here
    from sqjax import paths
    from sqjax.plan import plan
    from sqjax.plan.report import dumps, failure_lines, text
    from sqjax.registry import load_config
    from sqjax.stages import STAGES

    for name in stage_names:
        STAGES.get(name)
    cfg = load_config(config_path, list(overrides))
    _setup_logging()
    result = plan(cfg, topology, list(stage_names) or None, fix_tries=fix_tries, log=_log_info)
    click.echo(text(result))
    if json_path:
        Path(json_path).write_text(dumps(result), encoding="utf-8")
    # the run report's Plan section reads RUN/plan/<topology>.json
    paths.write_text(paths.as_path(cfg.run_dir) / "plan" / f"{topology}.json", dumps(result))
    if overrides_path:
        from sqjax.pipeline.config import merge, read_layer
        from sqjax.plan.overrides import write_overrides

        given: dict = {}
        for layer in config_path[1:]:
            given = merge(given, read_layer(layer))
        n = write_overrides(overrides_path, result, given)
        click.echo(f"wrote {n} overrides to {overrides_path}")
    failures = failure_lines(result)
    for line in failures:
        click.echo(f"does not fit: {line}", err=True)
    if failures:
        sys.exit(1)


@cli.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
def report(run_dir: str) -> None:
    """Write RUN_DIR/report.md from the stages' manifests and outputs."""
    from sqjax.pipeline.report import build_report
    from sqjax.stages import STAGES

    click.echo(str(build_report(run_dir, STAGES.names())))


def _run_all(cfg, run_dir: str | None, first: str | None, last: str | None) -> None:
    from sqjax.paths import as_path
    from sqjax.pipeline.report import build_report
    from sqjax.pipeline.runner import run_pipeline, topology
    from sqjax.stages.reward import dataset_path

    _setup_logging()
    run_pipeline(cfg, first, last, run_dir)
    out = as_path(run_dir or cfg.run_dir)
    if topology()[0] != 0:  # process 0 writes the report of a multi-process run
        return
    if dataset_path(out).is_file():
        click.echo(f"dataset: {dataset_path(out)}")
    click.echo(f"report: {build_report(out, cfg.stages.names())}")


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="sqjax")


if __name__ == "__main__":
    main()
