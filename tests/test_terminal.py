"""What every layer says on stderr: notices made harmless, shown once, sent where a server wants them."""

from autocomplete import terminal


def test_control_characters_and_bidi_overrides_are_shown_as_escapes():
    assert terminal.visible("a\x1b[31mb\u202ec\n\td") == "a\\x1b[31mb\\u202ec\n\td"
    assert terminal.visible("plain é 한국어 🙂") == "plain é 한국어 🙂"


def test_notices_go_to_stderr_made_visible(capsys):
    terminal.notice("loading \x1b]0;title\x07")
    err = capsys.readouterr().err
    assert "loading \\x1b]0;title\\x07" in err and "\x1b]" not in err


def test_notices_inside_notices_to_go_to_the_callback(capsys):
    said = []
    with terminal.notices_to(said.append):
        terminal.notice("for the client")
    terminal.notice("for stderr")
    assert said == ["for the client"]
    assert capsys.readouterr().err.strip() == "for stderr"


def test_a_notice_once_is_shown_once(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(terminal.paths, "data_dir", lambda: tmp_path / "autocomplete")
    for _ in range(3):
        terminal.notice_once("tip-a", "a tip")
    terminal.notice_once("tip-b", "another")
    assert capsys.readouterr().err.split("\n")[:2] == ["a tip", "another"]


def test_report_is_one_line_and_hides_the_api_key(monkeypatch, capsys):
    monkeypatch.setenv("AUTOCOMPLETE_API_KEY", "sk-secret-123")
    terminal.report("header Authorization: Bearer sk-secret-123 refused\x1b[2J")
    err = capsys.readouterr().err
    assert err.startswith("autocomplete: ") and err.count("\n") == 1
    assert "sk-secret-123" not in err and "***" in err and "\x1b[" not in err


def test_status_off_a_terminal_draws_nothing_unless_plain(capsys):
    with terminal.status("quiet step") as update:
        update("still quiet")
    with terminal.status("a long step", plain=True):
        pass
    assert capsys.readouterr().err.strip() == "a long step"
