"""`edge package --deb`: real packages of real executables, checked by lintian, installed with dpkg and apt into
real Debian roots (mmdebstrap), the service booted under a real systemd (systemd-nspawn), upgraded and purged."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests import debroot
from tests.conftest import ROOT, edge

pytestmark = pytest.mark.slow
# unpacking a Debian root (device nodes, owners) and running it under systemd-nspawn need root
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="unpacks Debian roots and runs them with systemd-nspawn: "
                                                         "root only (CI runs as root)")

MAINTAINER = "Edge Tests <tests@example.org>"

# lintian's warnings and info that stay, each with its reason; any other warning or any error fails
KEPT = {
    # a first revision (-1) built for a fleet, not uploaded to Debian: there is no Debian bug for it to close
    "initial-upload-closes-no-bugs",
}


def _serving_url(box: debroot.Booted, unit: str) -> str:
    """Where the service listens: it binds port 0 (a port chosen now could be taken before it starts) and says
    the port it got in its status (READY=1)."""
    status = box.show(unit, "StatusText")["StatusText"]
    assert status.startswith("serving on http://127.0.0.1:"), status
    return status.removeprefix("serving on ").split()[0]


def _copy_built(exe: Path, dist: Path) -> Path:
    """The executable and its build report, copied into `dist` (created), as a user would move them."""
    dist.mkdir(parents=True, exist_ok=True)
    report = exe.with_name(exe.name + ".report.json")
    shutil.copy(exe, dist / exe.name)
    shutil.copy(report, dist / report.name)
    return dist / exe.name


def _package(exe: Path, *args: str, check: bool = True):
    return edge("package", exe, "--deb", "--maintainer", MAINTAINER, *args, check=check)


def _lintian(deb: Path) -> list[str]:
    r = subprocess.run(["lintian", "--tag-display-limit", "0", str(deb)], capture_output=True,
                       text=True, timeout=600)
    return [ln for ln in r.stdout.splitlines() if ln[:2] in ("E:", "W:")]


@pytest.fixture(scope="module")
def need_tools():
    why = debroot.need_tools()
    assert why is None, why


@pytest.fixture(scope="module")
def mlp_deb(mlp_exe, tmp_path_factory, need_tools):
    """The bare model as a service on a loopback port, version 1.0, in a repository."""
    dist = tmp_path_factory.mktemp("mlp-deb")
    exe = _copy_built(mlp_exe, dist)
    r = _package(exe, "--version", "1.0", "--service", "--serve 127.0.0.1:0", "--repo", dist / "repo")
    return dist, r.stderr


def test_package_has_the_files_depends_and_service(mlp_deb):
    dist, log = mlp_deb
    deb = dist / "mlp_1.0_amd64.deb"
    report = json.loads((dist / "mlp_1.0_amd64.deb.report.json").read_text())
    fields = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True, check=True).stdout
    build = json.loads((dist / "mlp.report.json").read_text())
    assert "Package: mlp\n" in fields and "Version: 1.0\n" in fields and "Architecture: amd64\n" in fields
    assert f"libc6 (>= {build['glibc']['glibc_needed']})" in fields and MAINTAINER in fields
    contents = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    # 1.0 has no Debian revision: a native version, whose changelog is changelog.gz (policy 12.7)
    for path in ("./usr/bin/mlp", "./usr/share/doc/mlp/copyright", "./usr/share/doc/mlp/changelog.gz",
                 "./lib/systemd/system/mlp.service", "./etc/default/mlp", "./usr/share/man/man1/mlp.1.gz"):
        assert f" {path}\n" in contents + "\n", path
    control = subprocess.run(["dpkg-deb", "-e", deb, dist / "control"], check=True)
    assert control.returncode == 0
    assert (dist / "control/conffiles").read_text() == "/etc/default/mlp\n"
    assert "deb-systemd-helper enable 'mlp.service'" in (dist / "control/postinst").read_text()
    assert "etc/default/mlp" not in (dist / "control/md5sums").read_text()
    # the executable inside is the one built, byte for byte
    subprocess.run(["dpkg-deb", "-x", deb, dist / "x"], check=True)
    assert (dist / "x/usr/bin/mlp").read_bytes() == (dist / "mlp").read_bytes()
    copyright_text = (dist / "x/usr/share/doc/mlp/copyright").read_text()
    for part in build["licences"]:
        assert part["name"] in copyright_text
    assert {"onnxruntime", "numpy", "CPython", "pyinstaller"} <= {p["name"].lower() if p["name"] != "CPython"
                                                                  else p["name"] for p in build["licences"]}
    assert report["service"]["security"]["exposure"] is not None and report["service"]["security"]["exposure"] < 3
    assert "systemd-analyze security: exposure" in log
    repo = dist / "repo"
    assert {"Packages", "Packages.gz", "Release", "mlp_1.0_amd64.deb"} <= {p.name for p in repo.iterdir()}
    assert "Package: mlp\n" in (repo / "Packages").read_text()


def test_lintian_finds_no_errors_and_no_unexplained_warnings(mlp_deb, voice_deb):
    for deb in (mlp_deb[0] / "mlp_1.0_amd64.deb", voice_deb):
        found = _lintian(deb)
        unexplained = [ln for ln in found if ln.split()[2] not in KEPT or ln.startswith("E:")]
        assert not unexplained, found


@pytest.fixture(scope="module")
def voice_deb(voice_exe, tmp_path_factory, need_tools):
    dist = tmp_path_factory.mktemp("voice-deb")
    exe = _copy_built(voice_exe, dist)
    _package(exe, "--version", "2.1-1", "--service", "--mic --serve 127.0.0.1:8080", "--repo", dist / "repo")
    return dist / "voice-commands_2.1-1_amd64.deb"


@needs_root
def test_voice_package_depends_on_alsa_and_apt_installs_it_from_the_repository(voice_deb, tmp_path):
    fields = subprocess.run(["dpkg-deb", "-f", voice_deb], capture_output=True, text=True, check=True).stdout
    assert "libasound2" in fields.split("Depends:")[1].splitlines()[0]
    root = debroot.unpack("amd64", tmp_path / "root")
    shutil.copytree(voice_deb.parent / "repo", root / "srv/repo")
    (root / "etc/apt/sources.list.d/edge.list").write_text("deb [trusted=yes] file:/srv/repo ./\n")
    debroot.run(root, "apt-get", "update", "-qq")
    r = debroot.run(root, "apt-get", "install", "-y", "--no-install-recommends", "voice-commands")
    assert "libasound2" in r.stdout  # pulled in by Depends, from Debian's mirror
    assert (root / "usr/bin/voice-commands").is_file()
    assert (root / "etc/default/voice-commands").read_text().count('ARGS="--mic --serve 127.0.0.1:8080"') == 1
    # the unit is enabled (deb-systemd-helper made the link) and systemd finds nothing wrong with it
    assert (root / "etc/systemd/system/multi-user.target.wants/voice-commands.service").is_symlink()
    # --man=no: the minimal root has no man-db to look its Documentation= page up with
    v = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}",
                        "/lib/systemd/system/voice-commands.service"],
                       capture_output=True, text=True)
    assert v.returncode == 0 and not v.stderr.strip(), v.stderr
    info = debroot.run(root, "/usr/bin/voice-commands", "--info")
    assert json.loads(info.stdout)["app"]["name"] == "voice-commands"
    _voice_service_hears_and_is_restarted_when_its_audio_loop_hangs(root, tmp_path)


def _voice_service_hears_and_is_restarted_when_its_audio_loop_hangs(root: Path, tmp_path: Path) -> None:
    """The voice service under a real systemd: no sound device here, so its flags (the owner's file) point it at a
    recording of real speakers, streamed in real time through the same audio loop as a microphone."""
    shutil.copy(ROOT / "demos/kws/samples/real.wav", root / "srv/real.wav")
    os.chmod(root / "srv/real.wav", 0o644)  # the service's own user reads it, whatever the checkout's modes
    (root / "etc/default/voice-commands").write_text('ARGS="--wav /srv/real.wav --serve 127.0.0.1:0"\n')
    dropin = root / "etc/systemd/system/voice-commands.service.d"
    dropin.mkdir(parents=True)
    (dropin / "test.conf").write_text("[Service]\nWatchdogSec=3s\n")
    with debroot.Booted(root, tmp_path / "boot-voice.log") as box:
        deadline = time.monotonic() + 60
        while box.show("voice-commands", "ActiveState")["ActiveState"] != "active" and time.monotonic() < deadline:
            time.sleep(0.5)
        props = box.show("voice-commands", "ActiveState", "StatusText", "NRestarts", "MainPID")
        assert props["ActiveState"] == "active" and props["StatusText"] == "listening to /srv/real.wav", props
        # the audio loop pings: 5 s of streaming with a 3 s watchdog, no restart; it hears the first words
        time.sleep(5)
        assert box.show("voice-commands", "NRestarts")["NRestarts"] == "0"
        journal = box.sh("journalctl -u voice-commands --no-pager -o cat").stdout
        assert '"label": "yes"' in journal, journal[-2000:]
        # frozen mid-stream: the watchdog kills it, Restart=on-failure starts it again
        box.sh("systemctl kill --signal=SIGSTOP voice-commands")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = box.show("voice-commands", "ActiveState", "NRestarts", "MainPID", "StatusText")
            if int(after["NRestarts"]) >= 1 and after["StatusText"] == "listening to /srv/real.wav":
                break
            time.sleep(0.5)
        assert int(after["NRestarts"]) >= 1 and after["MainPID"] != props["MainPID"], after
        assert "Watchdog timeout" in box.sh("journalctl -u voice-commands --no-pager", check=False).stdout


@needs_root
def test_service_runs_under_systemd_is_watched_survives_upgrade_and_purges_clean(mlp_deb, mlp_exe, tmp_path):
    dist, _ = mlp_deb
    root = debroot.unpack("amd64", tmp_path / "root")
    before = debroot.files_of(root)
    shutil.copy(dist / "mlp_1.0_amd64.deb", root / "srv/mlp.deb")
    debroot.run(root, "dpkg", "-i", "/srv/mlp.deb")
    (root / "srv/mlp.deb").unlink()
    # a short watchdog for the test, the standard way (a drop-in); the packaged unit is unchanged
    dropin = root / "etc/systemd/system/mlp.service.d"
    dropin.mkdir(parents=True)
    (dropin / "test.conf").write_text("[Service]\nWatchdogSec=3s\n")
    with debroot.Booted(root, tmp_path / "boot.log") as box:
        deadline = time.monotonic() + 60
        while box.show("mlp", "ActiveState")["ActiveState"] != "active" and time.monotonic() < deadline:
            time.sleep(0.5)
        props = box.show("mlp", "ActiveState", "SubState", "Type", "NRestarts", "MainPID", "StatusText", "User")
        assert props["ActiveState"] == "active", (props, box.sh("journalctl -u mlp --no-pager", check=False).stdout)
        assert props["StatusText"].startswith("serving on http://127.0.0.1:")  # READY=1 came with it
        with urllib.request.urlopen(_serving_url(box, "mlp") + "/healthz", timeout=10) as r:
            assert r.status == 200
        user = box.sh(f"stat -c %U /proc/{props['MainPID']}").stdout.strip()
        assert user not in ("root", "0")  # DynamicUser
        assert box.sh("ls /run/mlp").stdout.strip()  # the onefile unpacked itself into its RuntimeDirectory
        # the pings arrive: over more than two watchdog periods nothing is restarted
        time.sleep(7)
        assert box.show("mlp", "NRestarts", "MainPID") == {"NRestarts": "0", "MainPID": props["MainPID"]}
        # a hung process stops pinging: systemd's watchdog kills it and Restart=on-failure starts it again
        box.sh("systemctl kill --signal=SIGSTOP mlp")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = box.show("mlp", "ActiveState", "NRestarts", "MainPID")
            if int(after["NRestarts"]) >= 1 and after["ActiveState"] == "active":
                break
            time.sleep(0.5)
        assert int(after["NRestarts"]) >= 1 and after["ActiveState"] == "active", after
        assert after["MainPID"] != props["MainPID"]
        journal = box.sh("journalctl -u mlp --no-pager", check=False).stdout
        assert "Watchdog timeout" in journal, journal[-3000:]
        with urllib.request.urlopen(_serving_url(box, "mlp") + "/healthz", timeout=10) as r:
            assert r.status == 200
        # the service's state folder (StateDirectory=; the voice app keeps enrolled commands there) is made for it,
        # owned by its dynamic user, and survives an upgrade
        assert box.sh("readlink /var/lib/mlp").stdout.strip() == "private/mlp"
        box.sh("echo kept > /var/lib/private/mlp/enrolled")
        # an upgrade keeps the owner's flags and restarts the service
        (root / "etc/default/mlp").write_text((root / "etc/default/mlp").read_text() + "# changed by the owner\n")
        v2 = _copy_built(mlp_exe, tmp_path / "v2")
        _package(v2, "--version", "1.1", "--service", "--serve 127.0.0.1:0")
        shutil.copy(v2.with_name("mlp_1.1_amd64.deb"), root / "srv/mlp.deb")
        box.sh("dpkg -i /srv/mlp.deb && rm /srv/mlp.deb")
        assert "# changed by the owner" in (root / "etc/default/mlp").read_text()
        assert box.show("mlp", "MainPID")["MainPID"] != after["MainPID"]  # restarted on upgrade
        assert (root / "var/lib/private/mlp/enrolled").read_text() == "kept\n"
        box.sh("dpkg --purge mlp")  # and the state goes with the purge (the check of what is left, below)
        assert box.show("mlp", "LoadState")["LoadState"] == "not-found"
    shutil.rmtree(dropin.parent)  # the test's own drop-in
    # what is new is what booting made (timers' stamps, the machine id), none of it the package's
    left = debroot.files_of(root) - before
    booting = ("var/lib/systemd/", "etc/machine-id", "var/lib/dbus/machine-id")
    assert not [p for p in left if not p.startswith(booting) or "mlp" in p], sorted(left)


@needs_root
def test_arm64_package_installs_and_runs_in_an_arm64_root_under_qemu(rpi4_build, tmp_path, need_tools):
    out, env, _ = rpi4_build
    dist = _copy_built(out, tmp_path / "dist").parent
    _package(dist / out.name, "--version", "3")
    deb = dist / f"{out.name}_3_arm64.deb"
    assert "Architecture: arm64" in subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True).stdout
    root = debroot.unpack("arm64", tmp_path / "root")
    shutil.copy(deb, root / "srv/pkg.deb")
    debroot.run(root, "dpkg", "-i", "/srv/pkg.deb")
    info = debroot.run(root, f"/usr/bin/{out.name}", "--info", timeout=300)
    assert json.loads(info.stdout)["target"]["arch"] == "aarch64"
    debroot.run(root, "dpkg", "--purge", out.name)
    assert not (root / "usr/bin" / out.name).exists()


@pytest.mark.parametrize("case", ["not-executable", "no-report", "bad-version", "no-board", "bad-args"])
def test_bad_input_is_one_line_and_writes_nothing(case, mlp_exe, tmp_path, monkeypatch):
    dist = tmp_path / "dist"
    dist.mkdir()
    exe = dist / "mlp"
    shutil.copy(mlp_exe, exe)
    if case != "no-report":
        shutil.copy(mlp_exe.with_name("mlp.report.json"), dist / "mlp.report.json")
    args, env = [], {}
    if case == "not-executable":
        exe = dist / "notes.txt"
        exe.write_text("hello")
        shutil.copy(dist / "mlp.report.json", dist / "notes.txt.report.json")
    elif case == "bad-version":
        args = ["--version", "one.two"]
    elif case == "no-board":
        boards = tmp_path / "boards"
        boards.mkdir()
        shutil.copy(ROOT / "targets/rpi4.toml", boards / "rpi4.toml")
        env = {"EDGEPACK_TARGETS": str(boards)}
    elif case == "bad-args":
        args = ["--service", 'a "quoted" flag']
    before = sorted(p.name for p in dist.iterdir())
    script = Path(sys.executable).with_name("edge")  # the console script of the environment running the tests
    r = subprocess.run([str(script), "package", str(exe), "--deb", *args], capture_output=True, text=True,
                       env={**os.environ, **env})
    expected = {"not-executable": 14, "no-report": 14, "bad-version": 2, "no-board": 9, "bad-args": 2}[case]
    assert r.returncode == expected, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge: error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in dist.iterdir()) == before


def test_onedir_build_installs_under_usr_lib_and_passes_lintian(models, tmp_path, need_tools):
    out = tmp_path / "dist" / "mlp"
    edge("build", models("mlp"), "-o", out, "--onedir")
    _package(out, "--version", "1.0-1")
    deb = tmp_path / "dist/mlp_1.0-1_amd64.deb"
    assert [ln for ln in _lintian(deb) if ln.split()[2] not in KEPT] == []
    subprocess.run(["dpkg-deb", "-x", deb, tmp_path / "x"], check=True)
    link = tmp_path / "x/usr/bin/mlp"
    assert link.is_symlink() and str(link.readlink()) == "../lib/mlp/mlp"
    assert (tmp_path / "x/usr/lib/mlp/_internal").is_dir()
    assert not any(p.stat().st_mode & 0o111 for p in (tmp_path / "x/usr/lib/mlp").rglob("*.so*") if p.is_file())
    info = subprocess.run([str(link), "--info"], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0 and json.loads(info.stdout)["name"] == "mlp", info.stderr


def test_a_strict_umask_still_gives_a_package_with_debian_modes(mlp_exe, tmp_path, need_tools):
    # a user whose umask is 077: dpkg-deb refuses a DEBIAN/ folder of mode 0700, and files of mode 0600 would be
    # installed unreadable to the service's own user
    exe = _copy_built(mlp_exe, tmp_path / "dist")
    r = subprocess.run([sys.executable, "-m", "edge", "package", str(exe), "--deb", "--version", "1.0", "--service",
                        "--serve 127.0.0.1:0", "--maintainer", MAINTAINER], capture_output=True, text=True,
                       cwd=ROOT, umask=0o077, timeout=600)
    assert r.returncode == 0, r.stderr
    deb = exe.with_name("mlp_1.0_amd64.deb")
    modes = {}
    for part in ("--fsys-tarfile", "--ctrl-tarfile"):
        tar = subprocess.run(["dpkg-deb", part, deb], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            modes.update({f"{part[2:6]}:{m.name}": (m.type, m.mode) for m in t.getmembers()})
    programs = {"fsys:./usr/bin/mlp", "ctrl:./postinst", "ctrl:./prerm", "ctrl:./postrm"}
    assert programs <= set(modes)
    for name, (kind, mode) in modes.items():
        if kind != tarfile.SYMTYPE:
            want = 0o755 if kind == tarfile.DIRTYPE or name in programs else 0o644
            assert mode == want, (name, oct(mode))
