"""The command line: ``runner`` (the console script) and ``python -m runner``, Hydra's own plus what it lacks.

Before Hydra sees the arguments, parsed by Hydra's own parser (never by hand):

* ``--list [objectives|optimizers|experiments|launchers]``: what exists, read from the registries,
  ``conf/`` and Hydra's plugins (:mod:`runner.discover`);
* ``--dry-run``: the jobs a command would run, which are done already, and how each would run,
  with nothing run and nothing written (:mod:`runner.discover`);
* ``-sc install=bash|zsh`` (and ``uninstall``): a completion script that serves ``runner`` and
  ``python -m runner``; ``-sc query=...``, as the script asks it, with ``python -m runner`` read as
  ``runner`` and the line cut at the cursor, is Hydra's own query;
* ``--cfg`` or ``--info`` with ``-m``: one line saying why not; ``--help`` with a sweep shows the help.

After it: a launcher that cannot reach its backend (no SLURM, no Ray cluster) says so in one line;
a launcher or sweeper that is not installed names its extra (:func:`runner.hints.missing_plugin`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

LIST_CHOICES = ("all", "objectives", "optimizers", "experiments", "launchers")

# The line a shell hands over for `python -m runner ...` (any python: python3, /venv/bin/python3.11).
PYTHON_M_RUNNER = re.compile(r"^\s*\S*python[\d.]*\s+-m\s+runner(?=\s|$)")


def own_parser() -> argparse.ArgumentParser:
    """The two options Hydra does not have; every other argument is Hydra's."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--list", nargs="?", const="all", choices=LIST_CHOICES, metavar="WHAT")
    parser.add_argument("--dry-run", action="store_true")
    return parser


def hydra_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` as Hydra's parser reads it (its errors raised, not printed with the usage)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.exit_on_error = False
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """The console script ``runner`` and ``python -m runner``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        ours, rest = own_parser().parse_known_args(argv)
        args = hydra_args(rest)
    except argparse.ArgumentError as err:
        fail(f"{err}")
    if ours.list or ours.dry_run:
        from runner import discover

        with one_line_errors():
            if ours.list:
                discover.print_lists(ours.list, args)
            else:
                discover.dry_run(args)
        return
    if args.shell_completion:
        completion(args.overrides)
    refuse_show_with_sweep(args)
    sys.argv[1:] = without_sweeps(rest, args.overrides) if args.help else rest
    run_hydra()


def run_hydra() -> None:
    """Hydra's command line (:func:`runner.app.cli`), a launcher's unreachable backend in one line."""
    from runner import app
    from runner.hints import unreachable_backend
    from runner.interrupt import EXIT_FAILED

    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"  # the user asked for Hydra's own report
    try:
        app.cli()
    except Exception as err:
        hint = None if full_error else unreachable_backend(err)
        if hint is None:
            raise
        fail(hint, EXIT_FAILED)


class one_line_errors:
    """A bad override or value inside ``--list`` / ``--dry-run``: one line and exit code 2, as a run says it."""

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            return False
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from runner.errors import ConfigError

        if isinstance(err, (HydraException, OmegaConfBaseException, ConfigError)):
            from runner.app import one_line

            fail(one_line(err) if not isinstance(err, ConfigError) else str(err))
        return False


def fail(line: str, code: int | None = None) -> None:
    from runner.interrupt import EXIT_BAD_CONFIG

    print(f"error: {line}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_CONFIG if code is None else code)


# ----------------------------------------------------------------------------- --cfg, --info, --help


def sweep_overrides(overrides: list[str]) -> list[str]:
    """The overrides that sweep (``lr=1,2``, ``seed=range(3)``), as Hydra's override parser reads them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra itself says what is wrong with them
        return []
    return [o.input_line for o in parsed if o.is_sweep_override()]


def refuse_show_with_sweep(args: argparse.Namespace) -> None:
    """``--cfg`` and ``--info`` describe one config: with ``-m`` or a swept value, one line says why not."""
    shown = "--cfg" if args.cfg else "--info" if args.info is not None else None
    if shown is None:
        return
    swept = sweep_overrides(args.overrides)
    if args.multirun or swept:
        what, how = ("-m", "drop -m and give") if args.multirun else (f"the sweep {' '.join(swept)}", "give")
        fail(
            f"{shown} with {what}: {shown} describes one config, not a sweep's jobs; {how} one value per key, "
            f"or list the sweep's jobs with --dry-run"
        )


def without_sweeps(argv: list[str], overrides: list[str]) -> list[str]:
    """``--help`` with ``-m`` and swept values (among ``overrides``, those of ``argv``): the help of the
    config without them (its groups and keys)."""
    swept = set(sweep_overrides(overrides))
    return [a for a in argv if a not in swept and a not in ("-m", "--multirun")]


# ----------------------------------------------------------------------------- completion


def completion(overrides: list[str]) -> None:
    """``-sc install=bash|zsh`` / ``uninstall=``: this project's script; ``query=``: Hydra's, on the line as
    ``runner`` would have it. Anything else goes to Hydra as it is."""
    from omegaconf import OmegaConf

    try:
        command = OmegaConf.from_dotlist(overrides)
    except Exception:
        return
    for action, script in (("install", install_script), ("uninstall", uninstall_script)):
        shell = command.get(action)
        if shell in ("bash", "zsh") and len(command) == 1:
            print(script(shell, executables()))
            sys.exit(0)
    if "query" in command and "COMP_LINE" in os.environ:
        os.environ["COMP_LINE"] = query_line(os.environ["COMP_LINE"], os.environ.get("COMP_POINT"))


def query_line(line: str, point: str | None = None) -> str:
    """The completion line up to the cursor, ``python -m runner`` read as ``runner`` (Hydra's query takes
    the first word as the app, or ``python FILE.py``)."""
    if point is not None and point.isdigit():
        line = line[: int(point)]
    return PYTHON_M_RUNNER.sub("runner", line, count=1)


def executables() -> list[str]:
    """The commands the script completes: ``runner``, and the Python it was installed from with ``-m runner``."""
    names = ["runner"]
    if os.path.basename(sys.argv[0]) == "__main__.py":  # python -m runner
        names += sorted({"python", "python3", os.path.basename(sys.executable)})
    return names


BASH = r"""# Tab completion for runner and `python -m runner` (bash). Install: eval "$(runner -sc install=bash)"
_runner_complete() {
    local line=${COMP_LINE:0:$COMP_POINT}
    local -a words
    read -ra words <<< "$line"
    local -a app=("${words[0]}")
    if [[ ${words[0]##*/} == python* ]]; then
        # python FILE or python -m OTHER: what the shell would offer anyway (file names)
        [[ ${words[1]} == -m && ${words[2]} == runner ]] || return 0
        app=("${words[0]}" -m runner)
    fi
    # Hydra completes the word after the last blank; readline replaces only what follows the
    # last of COMP_WORDBREAKS (which holds '=' and ':'), so each choice is cut to that part.
    local word=${line##*[[:space:]]}
    local cut=${#word}
    while (( cut > 0 )) && [[ $COMP_WORDBREAKS != *"${word:cut-1:1}"* ]]; do (( cut-- )); done
    local choice
    COMPREPLY=()
    for choice in $(COMP_LINE=$line COMP_POINT=${#line} "${app[@]}" -sc query=bash 2>/dev/null); do
        [[ $choice == "$word"* ]] && COMPREPLY+=("${choice:cut}")
    done
}
"""

ZSH = r"""# Tab completion for runner and `python -m runner` (zsh). Install: eval "$(runner -sc install=zsh)"
# after compinit (autoload -Uz compinit && compinit).
_runner_complete() {
    local line=${BUFFER[1,CURSOR]}
    local -a words=(${(z)line})
    local -a app=(${words[1]})
    if [[ ${words[1]:t} == python* ]]; then
        if [[ ${words[2]} != -m || ${words[3]} != runner ]]; then
            _files
            return
        fi
        app=(${words[1]} -m runner)
    fi
    local -a choices=(${=$(COMP_LINE=$line COMP_POINT=${#line} ${app} -sc query=zsh 2>/dev/null)})
    # each choice is the whole word (optimizer=adam): zsh matches it against the word typed so far
    compadd -S '' -- ${choices}
}
"""


def install_script(shell: str, names: list[str]) -> str:
    joined = " ".join(names)
    if shell == "zsh":
        return ZSH + f"compdef _runner_complete {joined}"
    saved = "".join(f"$(complete -p {n} 2>/dev/null)\n" for n in names if n != "runner")
    keep = f'export _RUNNER_OLD_COMPLETE="{saved}"\n' if saved else ""
    return BASH + keep + f"complete -o nospace -o default -F _runner_complete {joined}"


def uninstall_script(shell: str, names: list[str]) -> str:
    joined = " ".join(names)
    if shell == "zsh":
        return f"compdef -d {joined}\nunfunction _runner_complete"
    return (
        f"complete -r {joined} 2>/dev/null\nunset -f _runner_complete\n"
        'eval "${_RUNNER_OLD_COMPLETE:-}"\nunset _RUNNER_OLD_COMPLETE'
    )
