#!/usr/bin/env bash
# Installs everything cspine and its tests need on a fresh Debian machine:
# Debian packages (DICOM peers and validators, Python for training and
# validation), the ONNX Runtime shared library (from the onnxruntime-node npm
# package) and the Go modules. Idempotent; run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  dcmtk            # echoscu, storescu, storescp, findscu, movescu, dcmqrscp, dcmcjpeg, dcmcrle, dsrdump
  dicom3tools      # dciodvfy
  orthanc          # a real PACS for interoperability tests
  python3-pydicom python3-numpy python3-pil  # independent reader of what we write
  python3-torch python3-onnx                 # the training recipe (training/)
  imagemagick fonts-dejavu-core
  chromium chromium-driver                   # browser tests of the review UI
  gcc libc6-dev                              # dicomnode tests: LD_PRELOAD loopback shim for storescp/dcmqrscp/Orthanc
  # npm comes with the machine's Node.js (installing Debian's npm conflicts with it)
)

need_apt=0
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

# ONNX Runtime (CPU build) shared library, pinned: onnxruntime-node@1.30.0
# ships libonnxruntime.so.1 which works with github.com/yalue/onnxruntime_go v1.27.0.
ORT_DIR=third_party/onnxruntime
ORT_LIB="$ORT_DIR/libonnxruntime.so.1"
if [ ! -f "$ORT_LIB" ]; then
  mkdir -p "$ORT_DIR"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent onnxruntime-node@1.30.0 >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-1.30.0.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  cp "$tmp"/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 "$ORT_LIB"
  rm -rf "$tmp"
fi

go mod download
echo "setup: ok (ONNX Runtime at $ORT_LIB)"
