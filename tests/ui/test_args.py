"""autocomplete.ui.args reads the command line without Typer; Typer stays the reference. Both read the options of
autocomplete.settings.OPTIONS, and over hand-picked and generated command lines (with and without environment
variables) it gives exactly Typer's Settings, or declines (None) and lets Typer answer."""

from __future__ import annotations

import os
import typing

import pytest
import typer
from hypothesis import given, settings as hypothesis_settings, strategies as st

from autocomplete.settings import OPTION, OPTIONS, Option
from autocomplete.ui import args, cli

COMMAND = typer.main.get_command(cli.app)


def typer_parse(argv: list[str], environ: dict[str, str]):
    """Typer's Settings for argv with these AUTOCOMPLETE_* variables, or the exception it raises."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AUTOCOMPLETE_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(environ)
    try:
        return COMMAND.main(args=list(argv), prog_name="autocomplete", standalone_mode=False)
    except Exception as error:  # a usage error, --help's exit, a cross-check
        return error
    finally:
        for k in environ:
            os.environ.pop(k, None)
        os.environ.update(saved)


def same_as_typer(argv: list[str], environ: dict[str, str] | None = None) -> bool:
    """Whether args.parse reads argv: then it must be exactly what Typer builds."""
    environ = environ or {}
    ours = args.parse(argv, environ)
    if ours is None:
        return False
    theirs = typer_parse(argv, environ)
    assert ours == theirs, (argv, environ)
    return True


def test_the_options_are_typers():
    # (besides the prompt, --version and Typer's shell completion flags, which the fast parser leaves to Typer)
    params = {p.name: p for p in COMMAND.params
              if p.name not in ("prompt", "version", "install_completion", "show_completion")}
    assert set(params) == {spec.dest for spec in OPTIONS}
    for spec in OPTIONS:
        param = params[spec.dest]
        assert tuple(param.opts) == spec.flags and param.envvar == spec.envvar, spec
        assert bool(param.multiple) == spec.multiple and (spec.kind == "flag") == bool(param.is_flag), spec
        annotation = param.type_descriptor.annotation
        if spec.multiple:
            (annotation,) = typing.get_args(annotation)  # list[float] -> float
        if isinstance(spec.kind, tuple):
            assert set(typing.get_args(annotation)) == set(spec.kind), spec  # Literal[...]
        else:
            assert annotation is (bool if spec.kind == "flag" else spec.kind), spec


@pytest.mark.parametrize("argv", [
    ["san"], [], ["-i"], ["--each-line", "x"], ["--list-models"], ["--", "-m"], ["--", "x"],
    ["-t", "0.5", "-k", "3", "-p", "0.9", "-n", "7", "--seed", "4", "--stop", "line", "--json", "--only-new", "x"],
    ["--suggest", "3", "--words", "2", "x"], ["--suggest=3", "x"], ["-t0", "x"], ["-n5", "-t", "1", "x"],
    ["--explain", "-t", "0", "-t", "1", "x"], ["x", "--temperature=0.2"], ["-t", "-0", "x"],
    ["-m", "./relative/dir", "--precision", "int8", "--device", "cpu", "--no-server", "x"],
    ["--server", "status", "--idle-timeout", "9"], ["--api", "http://h:1/v1", "x"], ["-m", "a", "-m", "b", "x"],
    ["--style", "query", "--examples", "f.txt", "x"], ["-"], ["-k", "0", "-p", "1", "x"],
    ["--engine", "torch", "x"], ["--engine=onnx", "--device", "cpu", "x"], ["--engine", "auto", "--server", "start"],
])
def test_what_it_reads_is_what_typer_builds(argv):
    assert same_as_typer(argv)
    environ = {"AUTOCOMPLETE_MODEL": "from-env", "AUTOCOMPLETE_PRECISION": "int8", "AUTOCOMPLETE_STYLE": "text",
               "AUTOCOMPLETE_IDLE_TIMEOUT": "7", "AUTOCOMPLETE_API_BASE": "http://e:2/v1",
               "AUTOCOMPLETE_ENGINE": "torch"}
    assert same_as_typer(argv, environ)
    assert same_as_typer(["-m", "given", "--precision", "fp32", *argv], environ)


def test_the_engine_comes_from_the_option_then_the_environment_then_the_default():
    assert args.parse(["x"], {}).engine == "auto" == cli.DEFAULTS.engine
    assert args.parse(["--engine", "torch", "x"], {}).engine == "torch"
    assert args.parse(["x"], {"AUTOCOMPLETE_ENGINE": "onnx"}).engine == "onnx"
    assert args.parse(["--engine=torch", "x"], {"AUTOCOMPLETE_ENGINE": "onnx"}).engine == "torch"
    # What a warm server must have loaded names the engine: a torch server is not asked for onnx.
    where = args.parse(["-m", "m", "--engine", "onnx", "--device", "cpu", "x"], {}).placement()
    assert where == ("m", "cpu", "auto", "onnx")


@pytest.mark.parametrize("argv", [
    ["--help"], ["-h"], ["--version"], ["-ih"], ["--fly"], ["-t"], ["-t", "hot", "x"], ["-t", "-1", "x"],
    ["--stop", "word", "x"], ["--explain", "--suggest", "2", "x"], ["--words", "2", "x"], ["--suggest", "0", "x"],
    ["a", "b"], ["-t", "0.1", "-t", "0.2", "x"], ["--json=1", "x"], ["--idle-timeout", "-1"], ["-5"],
    ["--engine", "gpu", "x"], ["--engine", "ONNX", "x"], ["--engine"],
])
def test_what_typer_must_answer_is_left_to_it(argv):
    assert args.parse(argv, {}) is None


def test_a_bad_environment_value_is_left_to_typer():
    assert args.parse(["x"], {"AUTOCOMPLETE_STYLE": "poem"}) is None
    assert args.parse(["x"], {"AUTOCOMPLETE_IDLE_TIMEOUT": "soon"}) is None
    assert args.parse(["x"], {"AUTOCOMPLETE_ENGINE": "gpu"}) is None
    assert same_as_typer(["x"], {"AUTOCOMPLETE_MODEL": ""})  # empty: not set, as for click


_VALUES = st.sampled_from(["0", "1", "0.5", "-1", "7", "x", "nan", "1e-3", "auto", "cpu", "int8", "line", "query",
                           "status", "", "--json", "-t", "http://h/v1", "onnx", "torch"])
_FLAGS = st.sampled_from([flag for spec in OPTIONS for flag in spec.flags] + ["--", "-h", "-x", "--nope"])
_WORDS = st.lists(st.one_of(_FLAGS, _VALUES, _FLAGS.flatmap(lambda f: _VALUES.map(lambda v: f"{f}={v}")),
                            _FLAGS.filter(lambda f: len(f) == 2).flatmap(lambda f: _VALUES.map(lambda v: f + v))),
                  max_size=7)


@hypothesis_settings(max_examples=400, deadline=None)
@given(_WORDS, st.dictionaries(st.sampled_from([s.envvar for s in OPTIONS if s.envvar]), _VALUES, max_size=2))
def test_generated_command_lines_read_as_typer_reads_them(argv, environ):
    same_as_typer(argv, environ)


def _valid_value(spec: Option):
    if isinstance(spec.kind, tuple):
        return st.sampled_from(spec.kind)
    if spec.kind is int:
        return st.integers(-2, 60).map(str)
    if spec.kind is float:
        return st.floats(-0.5, 2.5, allow_nan=False).map(lambda x: f"{x:.3g}")
    return st.sampled_from(["a", "x y", "-", "서울", "http://h:8/v1"])


def _option(spec: Option):
    if spec.kind == "flag":
        return st.sampled_from(spec.flags).map(lambda flag: [flag])
    return st.tuples(st.sampled_from(spec.flags), _valid_value(spec), st.booleans()).map(
        lambda t: [f"{t[0]}={t[1]}"] if t[2] and t[0].startswith("--") else
        [t[0] + t[1]] if t[2] and not t[1].startswith("-") else [t[0], t[1]])


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(*[_option(spec) for spec in OPTIONS if spec.dest != "temperature"]), max_size=5),
       st.lists(_option(OPTION["temperature"]), max_size=2), st.one_of(st.none(), st.sampled_from(["san", "stock mar"])))
def test_every_well_formed_command_line_is_read_here_unless_typer_refuses_it(options, temperatures, prompt):
    """Well-formed: known options, their values, one prompt. Then this module declines exactly what Typer refuses."""
    argv = [word for option in options + temperatures for word in option] + ([prompt] if prompt else [])
    ours, theirs = args.parse(argv, {}), typer_parse(argv, {})
    assert (ours is None) == isinstance(theirs, Exception), (argv, theirs)
    assert ours is None or ours == theirs
