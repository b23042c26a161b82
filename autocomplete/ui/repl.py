"""The interactive loop: type a start, watch it complete; change settings with /commands. The model loads once, or
not at all when a warm server serves it (then the REPL starts in a fraction of a second)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from autocomplete import paths, settings as checks, terminal
from autocomplete.backend import backends
from autocomplete.backend.backends import InProcess, ServerGone, choose
from autocomplete.engine import models
from autocomplete.errors import UserError
from autocomplete.settings import Settings
from autocomplete.terminal import report, visible
from autocomplete.ui import actions
from autocomplete.ui.ghost import Ghost
from autocomplete.ui.render import renderer

HELP = """\
Type text and press Enter to complete it. Commands:
  /temp T      temperature (0 = greedy)      /top-k K   sample from the K likeliest (0 = off)
  /top-p P     nucleus sampling, 0 < P <= 1   /max N     at most N new tokens
  /seed N|off  fix or free the random seed    /stop line|sentence|none
  /style auto|query|text  complete as a search query, as plain text, or choose by the line (auto)
  /suggest N   list N suggestions per line    /suggest off  back to completions
  /explain     show every step (/explain off) /settings  show the current settings
  /model NAME  switch model (no NAME: show)
  /help        this text                      /quit      leave (Ctrl-D does too)
While you type, grey ghost text shows the likeliest next words: → takes all of it, Ctrl-→ (or Alt-f) one word.
With /suggest N on, the N likeliest suggestions list under the prompt as you type (Tab shows them any time):
↑/↓ pick one, Enter lists them for the line.
Ctrl-C stops a completion and keeps what was written."""

# command -> the setting it sets, read and checked as its option is (autocomplete.settings.OPTION)
_SETTERS = {"/temp": "temperature", "/temperature": "temperature", "/top-k": "top_k", "/top-p": "top_p",
            "/max": "max_tokens", "/stop": "stop", "/style": "style"}


class Repl:
    def __init__(self, settings: Settings):
        self.settings = settings  # changed in place by the /commands
        self.out = renderer(settings.json_lines, settings.only_new)
        self.lm = None  # the model loaded here, when no server serves it (or for /explain)
        self.served = None  # the warm server in use, or the --api engine (autocomplete.backend.backends)

    def run(self, lines: Iterable[str] | None = None) -> int:
        """Read from a prompt_toolkit session on a terminal, or from `lines` (piped stdin) until they end."""
        self._load()
        if lines is not None:
            for line in lines:
                if self.handle(line) == "quit":
                    break
            return 0

        ghost = Ghost(lambda: self.served or (InProcess(self.lm) if self.lm is not None else None),
                      settings=lambda: self.settings)
        prompt = _session(ghost, lambda: self.settings)
        where = self.lm.name if self.served is None else f"{self.served.name} on " + (
            self.settings.api if self.settings.api else "the running server")
        terminal.notice(f"{where}. Type text to complete it (→ takes the grey suggestion); /help for commands, "
                        "Ctrl-D to leave.")
        while True:
            try:
                line = prompt("> ")
            except KeyboardInterrupt:
                continue  # like a shell: Ctrl-C at the prompt clears the line
            except EOFError:
                return 0
            finally:
                ghost.cancel(wait=True)  # the model is needed for the line just entered: no overlap
            if self.handle(line) == "quit":
                return 0

    def handle(self, line: str) -> str | None:
        line = line.strip()
        if not line:
            return None
        if line.startswith("/"):
            return self.command(line)
        try:
            if self.served is not None and (self.settings.api or self.settings.servable()):
                try:
                    actions.run(self.served, line, self.settings, self.out)
                    return None
                except ServerGone:  # it stopped or idled out: from now on, the model loads here
                    self.served = None
            actions.run(InProcess(self._local()), line, self.settings, self.out)
        except KeyboardInterrupt:  # before the first token: nothing generated, the session goes on
            self.out.blank()
        except UserError as error:  # an --api engine down, say: said, and the session goes on
            report(str(error))
        return None

    def command(self, line: str) -> str | None:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        try:
            if name in ("/quit", "/exit", "/q"):
                return "quit"
            if name in ("/help", "/?"):
                terminal.stderr().print(HELP, markup=False)
            elif name == "/settings":
                shown = ", ".join(f"{k} {v}" for k, v in self.settings.params().shown().items())
                terminal.notice(f"model {self._name()}; {shown}")
            elif name == "/suggest":
                count = 0 if arg == "off" else _number(name, arg or "5", int)
                if count < 1 and arg != "off":
                    raise ValueError(f"/suggest takes a number of suggestions, 1 or more (or off), not {arg}")
                self.settings.suggest = count
                self.settings.explain = False
                terminal.notice(f"suggestions: {count} per line" if count else "suggestions off: lines are completed")
            elif name == "/explain":
                self.settings.explain = arg != "off"
                self.settings.suggest = 0
                terminal.notice("explain on: every step is shown" if self.settings.explain else "explain off")
            elif name == "/seed":
                off = arg in ("off", "none", "")
                self.settings.seed = None if off else checks.check("seed", _number(name, arg, int))
                terminal.notice(f"seed {self.settings.seed if self.settings.seed is not None else 'off (random)'}")
            elif name == "/model":
                if arg:
                    previous, self.settings.model = self.settings.model, arg
                    try:
                        self._load()
                    except (UserError, KeyboardInterrupt):
                        self.settings.model = previous
                        raise
                terminal.notice(f"model {self._name()}")
            elif name in _SETTERS:
                field = _SETTERS[name]
                spec = checks.OPTION[field]
                setattr(self.settings, field, spec.checked(arg if spec.kind not in (int, float) else
                                                           _number(name, arg, spec.kind)))
                terminal.notice(f"{field.replace('_', '-')} {getattr(self.settings, field)}")
            else:
                terminal.notice(f"unknown command {name}; /help lists them")
        except ValueError as error:
            terminal.notice(str(error))
        except UserError as error:
            terminal.notice(str(error).replace("--model ", "/model "))  # the advice in the REPL's own terms
        except KeyboardInterrupt:
            terminal.notice("cancelled")
        return None

    def _load(self) -> None:
        """Use the --api engine, or the warm server for the model if one runs, else load it here; one
        model at a time."""
        served = choose(self.settings)  # (the server too when started with --explain: later lines may use it)
        if served is None:
            self._local()  # a model that can't be had raises here, before anything changed
        else:
            self._unload()
        self.served = served

    def _local(self):
        """The model in this process (no server, or /explain, which runs here), loaded on first need; models.load
        keeps it, so asking again costs a lookup."""
        loaded = backends.loaded(self.settings)
        if self.lm is not loaded:
            self._unload()
            self.lm = loaded
        return self.lm

    def _unload(self) -> None:
        if self.lm is not None:
            models.unload(self.lm)  # so its memory can go
            self.lm = None

    def _name(self) -> str:
        return self.served.name if self.served is not None else self._local().name


def _number(command: str, text: str, kind: type):
    """int or float of the command's argument, or ValueError saying so in the REPL's own words."""
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{command} takes {what}, not {text!r}" if text else f"{command} needs {what}") from None


def _session(ghost, settings):
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggest, Suggestion, ThreadedAutoSuggest
    from prompt_toolkit.completion import Completer, Completion, ThreadedCompleter
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    def typed(document) -> bool:
        text = document.text
        return bool(text.strip()) and not text.startswith("/") and document.is_cursor_at_the_end

    class GhostText(AutoSuggest):
        def get_suggestion(self, buffer, document):
            if not typed(document) or settings().suggest:  # with the list shown, its first row is the ghost's
                return None
            found = ghost(document.text)
            return Suggestion(found) if found else None

    class Listed(Completer):
        """The suggestion list under the prompt: each row the whole line it would make, its probability beside."""

        def get_completions(self, document, complete_event):
            if not typed(document):
                return

            for s in ghost.suggestions(document.text, settings().suggest or 5):
                yield Completion(s.completion, start_position=0, display=visible(document.text + s.completion),
                                 display_meta=f"{s.probability:.1%}")

    keys = KeyBindings()
    has_ghost = Condition(lambda: _buffer().suggestion is not None and _buffer().document.is_cursor_at_the_end)

    def _buffer():
        from prompt_toolkit.application.current import get_app

        return get_app().current_buffer

    @keys.add("c-right", filter=has_ghost)
    @keys.add("escape", "f", filter=has_ghost)
    def _accept_word(event):  # → takes all of it (prompt_toolkit's own binding), Ctrl-→ one word, like Alt-f
        event.current_buffer.insert_text(re.match(r"\s*\S*", event.current_buffer.suggestion.text).group(0))

    history = paths.data_dir() / "history"
    history.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not history.exists():
        history.touch(mode=0o600)  # what people type is theirs alone
    session = PromptSession(history=FileHistory(os.fspath(history)), auto_suggest=ThreadedAutoSuggest(GhostText()),
                            completer=ThreadedCompleter(Listed()),
                            complete_while_typing=Condition(lambda: bool(settings().suggest)), key_bindings=keys)
    # prompt_toolkit runs one suggestion at a time: the next keystroke's waits for the running one, and so does the
    # end of the prompt (however it ends). A keystroke fires this before it asks for its own suggestion.
    session.default_buffer.on_text_changed += lambda _: ghost.cancel()

    def prompt(message: str) -> str:
        def at_the_end():  # Enter, Ctrl-C, Ctrl-D: the future is set while prompt_toolkit still runs
            session.app.future.add_done_callback(lambda _: ghost.cancel())

        return session.prompt(message, pre_run=at_the_end)

    return prompt
