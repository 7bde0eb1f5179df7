"""The ``aire`` command: the typer app, its command tree, and the one place that maps outcomes to exit codes
(0 pass, 1 fail, 2 inconclusive, 3 error, usage errors included).

The commands live in one module per group (run_cmds, gate_cmds, monitor_cmds, serve_cmds, db_cmds,
judge_cmds); they raise ``AireError`` and never catch it: ``main`` turns it into one line on stderr and its
exit code. Heavy libraries (prefect, mlflow, datasets) are imported inside the commands that use them, so
``aire --help`` and ``aire serve`` start in a fraction of a second.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from typer.exceptions import TyperException

from aire.cli import db_cmds, gate_cmds, gateway_cmds, judge_cmds, keys_cmds, monitor_cmds, run_cmds, serve_cmds
from aire.core.errors import EXIT_ERROR, AireError
from aire.core.settings import get_settings, quiet_environment

app = typer.Typer(
    name="aire",
    help="Continuous evaluation of LLMs served by vLLM. Exit codes: 0 pass, 1 fail, 2 inconclusive, 3 error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Run an evaluation flow.", no_args_is_help=True)
models_app = typer.Typer(help="Build the tiny local models used by the demo and tests.", no_args_is_help=True)
db_app = typer.Typer(help="The results store: schema migrations.", no_args_is_help=True)
judge_app = typer.Typer(help="LLM judges: calibrate one against human labels before it gates.", no_args_is_help=True)
keys_app = typer.Typer(help="The gateway's API keys: create (shown once), list, revoke.", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents opened by the monitor; `clear` re-allows promoting a version.")
app.add_typer(run_app, name="run")
app.add_typer(models_app, name="models")
app.add_typer(incidents_app, name="incidents")
app.add_typer(db_app, name="db")
app.add_typer(judge_app, name="judge")
app.add_typer(keys_app, name="keys")

# The command tree in one place; `aire --help` lists the commands in this order (then the groups above).
run_app.command("offline")(run_cmds.run_offline)
app.command("rescore")(run_cmds.rescore_cmd)
models_app.command("build")(serve_cmds.models_build)
app.command("serve")(serve_cmds.serve)
app.command("gateway")(gateway_cmds.gateway_cmd)
app.command("ui")(serve_cmds.ui)
app.command("plan")(run_cmds.plan_cmd)
app.command("gate")(gate_cmds.gate_cmd)
app.command("promote")(gate_cmds.promote_cmd)
app.command("history")(gate_cmds.history_cmd)
incidents_app.callback(invoke_without_command=True)(monitor_cmds.incidents_cmd)
incidents_app.command("clear")(monitor_cmds.incidents_clear)
app.command("monitor")(monitor_cmds.monitor_cmd)
app.command("schedule")(monitor_cmds.schedule_cmd)
app.command("traffic")(monitor_cmds.traffic_cmd)
app.command("metrics")(monitor_cmds.metrics_cmd)
app.command("evaluators")(serve_cmds.list_evaluators)
app.command("version")(serve_cmds.version)
db_app.command("upgrade")(db_cmds.db_upgrade)
judge_app.command("calibrate")(judge_cmds.calibrate_cmd)
keys_app.command("create")(keys_cmds.keys_create)
keys_app.command("list")(keys_cmds.keys_list)
keys_app.command("revoke")(keys_cmds.keys_revoke)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map every outcome to aire's exit codes."""
    settings = get_settings()
    quiet_environment(settings)
    # Flow and task logs still reach the Prefect API (and UI); the terminal shows aire's own output,
    # and an error as one line instead of Prefect's traceback.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    # MLflow configures its own logger at import and chatters about migrations on a new database.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if argv is None:  # a command from the shell, not a call from a test or a notebook
        from aire.tracking.recorder import enable

        enable()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="aire", standalone_mode=False)
        return int(code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except TyperException as exc:
        # Click-style CLIs exit 2 on usage errors, but 2 means INCONCLUSIVE to a CI job reading aire's exit code.
        ctx = getattr(exc, "ctx", None)
        hint = f" (try: {ctx.command_path} --help)" if ctx is not None else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        return EXIT_ERROR
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return EXIT_ERROR
    except AireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("AIRE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set AIRE_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
