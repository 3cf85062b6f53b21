"""ccmulti's own system integration, checked with the real tools: the systemd units pass `systemd-analyze
verify` without a warning, the generated man page renders without groff warnings and covers every subcommand,
bash completion completes, and (as root) the .deb built by cpack from the build dir installs with dpkg, works,
and is purged without a trace."""
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import CCMULTI

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", ""))
MAN_PAGE = BUILD / "docs" / "man1" / "ccmulti.1"
UNITS = ("ccmulti.service", "ccmulti@.service")


@pytest.fixture
def tmp():
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-pkg-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def verify_units(paths, env=None):
    """systemd-analyze verify; any line it prints about a ccmulti unit is a failure."""
    proc = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})
    about_us = [line for line in (proc.stdout + proc.stderr).splitlines() if "ccmulti" in line]
    assert proc.returncode == 0 and not about_us, proc.stdout + proc.stderr


def subcommands():
    text = subprocess.run([CCMULTI, "--help"], capture_output=True, text=True, check=True).stdout
    section = text.split("\nSubcommands:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^  ([a-z][a-z0-9_-]*)", section, re.M)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing (Debian package systemd)")
def test_units_pass_systemd_analyze_verify(tmp):
    assert MAN_PAGE.exists(), f"{MAN_PAGE} not built (help2man missing?)"
    for unit in UNITS:
        text = (REPO / "systemd" / unit).read_text()
        assert "/usr/bin/ccmulti " in text
        (tmp / unit).write_text(text.replace("/usr/bin/ccmulti", CCMULTI))
    # Documentation=man:ccmulti(1) is checked too: against the man page of this build.
    verify_units([tmp / u for u in UNITS], env={"MANPATH": str(MAN_PAGE.parent.parent)})
    template = (tmp / "ccmulti@.service").read_text()
    for key in ("Type=notify", "KillMode=mixed", "ExecReload=", "RuntimeDirectory=ccmulti/%i",
                "StateDirectory=ccmulti/%i", "LogsDirectory=ccmulti/%i", "/etc/ccmulti/%i.toml", "User=",
                "NoNewPrivileges=yes", "ProtectSystem=full"):
        assert key in template, key
    timeout = int(re.search(r"^TimeoutStopSec=(\d+)", template, re.M).group(1))
    assert timeout >= 300 + 10, "above a usual task time limit (--time-limit=300): the warm stop's outer deadline"


def test_man_page_renders_without_warnings_and_covers_every_subcommand():
    assert MAN_PAGE.exists(), f"{MAN_PAGE} not built (help2man missing?)"
    groff = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN_PAGE)], capture_output=True, text=True,
                           timeout=60)
    assert groff.returncode == 0 and groff.stderr == "", groff.stderr
    page = subprocess.run(["man", "-l", str(MAN_PAGE)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "120", "LC_ALL": "C.UTF-8"})
    assert page.returncode == 0, page.stderr
    text = re.sub(r".\x08", "", page.stdout)
    for section in ("NAME", "SYNOPSIS", "OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"):
        assert f"\n{section}\n" in text, section
    for command in subcommands():
        assert f"ccmulti {command}\n" in text, command
    assert "ccmulti config check" in text and "--foreground" in text


def complete(*words, cwd=None):
    script = REPO / "scripts/completion/ccmulti.bash"
    words_list = " ".join(f"'{w}'" for w in words)
    proc = subprocess.run(
        ["bash", "-c", f"source {script}; COMP_WORDS=({words_list}); COMP_CWORD={len(words) - 1}; _ccmulti; "
                       'printf "%s\\n" "${COMPREPLY[@]}"'],
        capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**os.environ, "PATH": f"{pathlib.Path(CCMULTI).parent}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_completion(tmp):
    assert complete("ccmulti", "st") == ["start", "stop", "stopwait", "status"]
    assert set(complete("ccmulti", "")) == set(subcommands())
    assert complete("ccmulti", "--ru") == ["--run-dir"]
    assert complete("ccmulti", "start", "--fore") == ["--foreground"]
    assert complete("ccmulti", "config", "") == ["check", "show"]
    config = tmp / "group.toml"
    config.write_text("[nodes.alpha]\n[nodes.beta]\n[nodes.gamma]\n")
    assert complete("ccmulti", "-C", str(config), "stop", "") == ["alpha", "beta", "gamma"]
    assert complete("ccmulti", "-C", str(config), "restart", "b") == ["beta"]


@pytest.mark.skipif(os.geteuid() != 0, reason="installing a .deb needs root")
@pytest.mark.skipif(not shutil.which("dpkg-shlibdeps") or not shutil.which("cpack"),
                    reason="cpack and dpkg-shlibdeps (Debian package dpkg-dev) are needed to build the .deb")
def test_deb_installs_works_and_purges(tmp):
    if subprocess.run(["dpkg-query", "-W", "ccmulti"], capture_output=True).returncode == 0:
        pytest.skip("a ccmulti package is already installed on this machine; not touching it")
    assert (BUILD / "CPackConfig.cmake").exists(), "configure the build dir with CMake first"
    build = subprocess.run(["cpack", "-G", "DEB", "-B", str(tmp)], cwd=BUILD, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    [deb] = tmp.glob("ccmulti_*.deb")
    depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True).stdout
    for library in ("libc6", "libstdc++6", "libsqlite3-0", "libsystemd0", "adduser",
                    "librabbitmq4", "libcpp-httplib"):  # the modules' (platform/module.hpp)
        assert library in depends, depends
    user_existed = subprocess.run(["getent", "passwd", "ccmulti"], capture_output=True).returncode == 0
    try:
        install = subprocess.run(["dpkg", "-i", str(deb)], capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        assert install.returncode == 0, install.stdout + install.stderr
        version = subprocess.run(["/usr/bin/ccmulti", "--version"], capture_output=True, text=True)
        assert version.returncode == 0 and version.stdout.startswith("ccmulti "), version
        verify_units([f"/usr/lib/systemd/system/{u}" for u in UNITS])
        assert pwd.getpwnam("ccmulti").pw_dir == "/var/lib/ccmulti"
        for path in ("/etc/init.d/ccmulti", "/etc/logrotate.d/ccmulti", "/etc/default/ccmulti",
                     "/usr/share/man/man1/ccmulti.1", "/usr/share/bash-completion/completions/ccmulti",
                     "/usr/share/doc/ccmulti/examples/ccmulti.toml", "/usr/share/doc/ccmulti/supervisor.md"):
            assert os.path.exists(path), path
        assert "/usr/bin/ccmulti reopen" in pathlib.Path("/etc/logrotate.d/ccmulti").read_text()
        # The RabbitMQ module is found where the package put it: the call fails only on the unreachable broker.
        call = subprocess.run(["/usr/bin/ccmulti", "call", "ccmulti.echo", "[1]", "--broker",
                               "amqp://guest:guest@127.0.0.1:1//"], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "CCMULTI_STATE_DIR": str(tmp / "state")})
        assert call.returncode != 0 and "module" not in call.stderr and "127.0.0.1:1" in call.stderr, call.stderr
        status = subprocess.run(["/etc/init.d/ccmulti", "status"], capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CCMULTI_DEFAULTS": "/dev/null",
                                     "CCMULTI_RUN_DIR": str(tmp / "run")})
        assert status.returncode == 3, status.stdout + status.stderr
        conffiles = subprocess.run(["dpkg-query", "-W", "-f", "${Conffiles}", "ccmulti"], capture_output=True,
                                   text=True).stdout
        assert "/etc/init.d/ccmulti" in conffiles and "/etc/logrotate.d/ccmulti" in conffiles, conffiles
    finally:
        purge = subprocess.run(["dpkg", "--purge", "ccmulti"], capture_output=True, text=True, timeout=120)
        if not user_existed:
            subprocess.run(["deluser", "--quiet", "--system", "ccmulti"], capture_output=True)
            subprocess.run(["delgroup", "--quiet", "--system", "ccmulti"], capture_output=True)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    for path in ("/usr/bin/ccmulti", "/etc/init.d/ccmulti", "/etc/logrotate.d/ccmulti", "/etc/default/ccmulti",
                 "/usr/lib/systemd/system/ccmulti.service", "/usr/share/doc/ccmulti"):
        assert not os.path.exists(path), f"{path} left behind"
    if not user_existed:
        assert subprocess.run(["getent", "passwd", "ccmulti"], capture_output=True).returncode != 0
