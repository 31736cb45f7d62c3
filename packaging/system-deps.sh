#!/usr/bin/env bash
# Installs the Debian packages a Vigia target needs, saying what it installs and why.
# Usage: packaging/system-deps.sh test|demo|bench|packages
# Only missing packages are installed; as root directly, otherwise through sudo.
set -euo pipefail

profile=${1:-test}

# GStreamer's RTSP server through Debian's python3-gi: the real cameras of tests and benches.
rtsp=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
# ffmpeg/ffprobe: an independent checker of our files, the reference of the benchmark, and the
# SRT client of the SRT tests; libsrt: the recorder's SRT out (server/live/srt_gateway.py).
checker=(ffmpeg libsrt1.5-gnutls)
# Qt (PySide6 wheels) needs these to open windows, under Xvfb for OpenGL tests or on a desktop.
qt=(xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
    libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libegl1 libgl1
    libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libfontconfig1 libdbus-1-3 libxkbcommon0)
# Headless Chromium for the web viewer (WebRTC/WHEP) test.
browser=(chromium chromium-driver)
# Packaging and its checks: dpkg-deb, systemd-analyze (verify, security), appstreamcli,
# desktop-file-validate.
packaging=(dpkg appstream desktop-file-utils)
if ! command -v systemd-analyze >/dev/null; then packaging+=(systemd); fi
# The WHEP test runs its viewers across a veth pair in a network namespace (ip netns; aioice
# drops 127.0.0.1) and the disk-full test mounts a small tmpfs: both as root, as CI runs.
rooted=(iproute2 mount)
# venv for Python itself (Debian splits it out of python3).
base=(python3-venv)

case "$profile" in
  test)  wanted=("${rtsp[@]}" "${checker[@]}" "${qt[@]}" "${browser[@]}" "${packaging[@]}" "${rooted[@]}") ;;
  packages) wanted=("${packaging[@]}") ;;
  bench) wanted=("${rtsp[@]}" "${checker[@]}") ;;
  demo)  wanted=("${qt[@]}") ;;
  *) echo "usage: $0 test|demo|bench|packages" >&2; exit 2 ;;
esac
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then wanted+=("${base[@]}"); fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages for '$profile': all present"
  exit 0
fi
echo "system packages for '$profile': installing ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "error: no apt-get; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo=(sudo); else
    echo "error: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
