"""Fetching the corpus's Debian packages without installing them system-wide (``apt-get download``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..fsio import atomic_write

# Data packages: unpacked with dpkg -x into the cache, never installed.
DATA_PACKAGES = (
    "fillets-ng-data-cs",
    "fillets-ng-data-nl",
    "tuxpaint-stamps-default",
    "klettres-data",
    "ktuberling-data",
    "hedgewars-data",
    "gcin-voice",
    "sonic-pi-samples",
    "supertux-data",
    "freedroidrpg-data",
    "lincity-ng-data",
    "colobot-common-sounds",
    "sound-theme-freedesktop",
    "oxygen-sounds",
    "fluid-soundfont-gm",
)
# Programs the recipe runs: installed with apt-get install when missing.
TOOL_PACKAGES = {"espeak-ng": "espeak-ng", "fluidsynth": "fluidsynth"}


def ensure_tools() -> None:
    """Install espeak-ng and fluidsynth with apt-get when they are not on PATH."""
    _install([pkg for exe, pkg in TOOL_PACKAGES.items() if shutil.which(exe) is None])


def ensure_packages(packages: tuple[str, ...]) -> None:
    """Install with apt-get those of ``packages`` (programs and their voices) that are not installed."""
    _install([p for p in packages if not _installed(p)])


def _installed(package: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def _install(missing: list[str]) -> None:
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if shutil.which("sudo") and _not_root():
        cmd = ["sudo", *cmd]
    try:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(cmd, check=True, capture_output=True, env={"DEBIAN_FRONTEND": "noninteractive",
                                                                   "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"could not install {missing}; run: {' '.join(cmd)} ({e})") from None


def _not_root() -> bool:
    import os

    return os.geteuid() != 0


def fetch_packages(cache: Path, packages: tuple[str, ...] = DATA_PACKAGES) -> dict[str, dict]:
    """Download and unpack each package into ``cache/pkgs/<name>``; return {name: {version, deb}}."""
    debs = cache / "debs"
    pkgs = cache / "pkgs"
    debs.mkdir(parents=True, exist_ok=True)
    pkgs.mkdir(parents=True, exist_ok=True)
    need = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if need:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        r = subprocess.run(["apt-get", "download", *need], cwd=debs, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"apt-get download {' '.join(need)} failed:\n{r.stderr.strip()}")
    out = {}
    for p in packages:
        found = sorted(debs.glob(f"{p}_*.deb"))
        if not found:
            raise RuntimeError(f"package {p} was not downloaded")
        deb = found[-1]
        dest = pkgs / p
        stamp = dest / ".unpacked"
        if not stamp.exists() or stamp.read_text() != deb.name:
            if dest.exists():
                shutil.rmtree(dest)
            subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
            atomic_write(stamp, deb.name)  # written last: the unpacked tree is complete
        version = deb.name.split("_")[1].replace("%3a", ":")
        out[p] = {"version": version, "deb": deb.name}
    return out
