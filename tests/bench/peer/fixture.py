#!/usr/bin/env python3
"""Adds to the bench's copy of the fake upstream what the reference server
(asu 0.7.x from PyPI) needs to build for real, and prints the public key its
branch must trust.

    fixture.py UPSTREAM_ROOT FAKEIB_DIR SAMPLES_DIR MAKEFILE

asu 0.7.x does not use containers: its rq worker downloads
`<target>/sha256sums`, its usign signature `sha256sums.sig` (checked against
the branch's `pubkey`) and the ImageBuilder archive named in it, unpacks the
archive and runs the host's `make info / manifest / image` inside. Its
metadata refresh reads `Packages.manifest` indexes. So this writes, under
releases/1.2.3/:

- targets/testtarget/testsubtarget/openwrt-imagebuilder-….tar.xz: the
  Podman tier's fake ImageBuilder (`make` script, profiles, versions and
  the ImageBuilder output samples) behind a GNU Makefile (MAKEFILE);
- targets/testtarget/testsubtarget/sha256sums and sha256sums.sig, signed
  with a fresh Ed25519 (usign) key made here;
- targets/testtarget/testsubtarget/packages/Packages.manifest and
  packages/testarch/base/Packages.manifest: the packages the bench asks for.

Runs with the peer's virtualenv Python (PyNaCl comes with asu).
"""
import base64
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import nacl.signing

VERSION = "1.2.3"
TARGET = "testtarget/testsubtarget"
ARCH = "testarch"
REVISION = "r12345-abcdef"
ARCHIVE = "openwrt-imagebuilder-1.2.3-testtarget-testsubtarget.Linux-x86_64"
# What the bench requests, plus base-files (the refresh reads its
# architecture) and a few defaults.
TARGET_PACKAGES = ["base-files", "vim", "big-image-pkg", "busybox", "dropbear"]
ARCH_PACKAGES = ["dnsmasq", "opkg"]


def manifest(names):
    return "".join(
        f"Package: {n}\nVersion: 1.0-r1\nSourceName: {n}\nArchitecture: {ARCH}\n"
        f"Filename: {n}_1.0-r1_{ARCH}.ipk\n\n"
        for n in names
    )


def add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 1700000000
    tar.addfile(info)


def imagebuilder_archive(path, fakeib, samples, makefile):
    config = (
        f"FAKEIB_TARGET='{TARGET}'\nFAKEIB_VERSION='{VERSION}'\n"
        f"FAKEIB_ARCH='{ARCH}'\nFAKEIB_REVISION='{REVISION}'\nFAKEIB_FLAVOUR='opkg'\n"
    )
    top = ARCHIVE
    with tarfile.open(path, "w:xz") as tar:
        add_dir(tar, top)
        add_bytes(tar, f"{top}/Makefile", Path(makefile).read_bytes())
        add_bytes(
            tar,
            f"{top}/.config",
            b"CONFIG_TARGET_ROOTFS_SQUASHFS=y\n# CONFIG_TARGET_ROOTFS_EXT4FS is not set\n",
        )
        add_bytes(tar, f"{top}/repositories.conf", (Path(fakeib) / "repositories.conf").read_bytes())
        add_dir(tar, f"{top}/.fakeib")
        add_bytes(tar, f"{top}/.fakeib/make", (Path(fakeib) / "make").read_bytes(), 0o755)
        add_bytes(tar, f"{top}/.fakeib/config", config.encode())
        add_bytes(tar, f"{top}/.fakeib/profiles", (Path(fakeib) / "profiles").read_bytes())
        add_bytes(
            tar,
            f"{top}/.fakeib/default-packages",
            (Path(fakeib) / "default-packages.opkg").read_bytes(),
        )
        add_bytes(tar, f"{top}/.fakeib/versions", (Path(fakeib) / "versions").read_bytes())
        if Path(samples).is_dir():
            add_dir(tar, f"{top}/.fakeib/fixtures")
            for sample in sorted(Path(samples).iterdir()):
                if sample.is_file():
                    add_bytes(tar, f"{top}/.fakeib/fixtures/{sample.name}", sample.read_bytes())


def usign_key():
    """A fresh key pair and its usign public key line (pkalg "Ed", keynum)."""
    key = nacl.signing.SigningKey.generate()
    keynum = os.urandom(8)
    public = base64.b64encode(b"Ed" + keynum + bytes(key.verify_key)).decode()
    return key, keynum, public


def usign_signature(key, keynum, message):
    sig = key.sign(message).signature
    return "untrusted comment: signed by asu-builder make bench\n" + base64.b64encode(
        b"Ed" + keynum + sig
    ).decode() + "\n"


def main():
    root, fakeib, samples, makefile = (Path(a) for a in sys.argv[1:5])
    release = root / "releases" / VERSION
    target_dir = release / "targets" / TARGET
    (target_dir / "packages").mkdir(parents=True, exist_ok=True)
    (target_dir / "packages" / "Packages.manifest").write_text(manifest(TARGET_PACKAGES))
    arch_dir = release / "packages" / ARCH / "base"
    arch_dir.mkdir(parents=True, exist_ok=True)
    (arch_dir / "Packages.manifest").write_text(manifest(ARCH_PACKAGES))

    archive = target_dir / f"{ARCHIVE}.tar.xz"
    imagebuilder_archive(archive, fakeib, samples, makefile)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    sums = f"{digest} *{archive.name}\n".encode()
    (target_dir / "sha256sums").write_bytes(sums)
    key, keynum, public = usign_key()
    (target_dir / "sha256sums.sig").write_text(usign_signature(key, keynum, sums))
    print(public)


if __name__ == "__main__":
    main()
