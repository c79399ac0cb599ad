"""`distrodebug image` against `docker save` of the same 1 GiB image, same run, and its peak RSS.

    python3 benchmarks/image_check.py [--mib 1024] [--layers 4] [--small 20000] [--rounds 3] [--keep]

Loads (offline, `docker load` of an archive written here) an image of LAYERS layers holding MIB
mebibytes in total: SMALL files of 2 KiB spread over the layers, the rest in 64 MiB files of
random data, a key file added in one layer and deleted in the next. Then, interleaved round by
round (the machine's load drifts), times `docker save -o FILE`, `docker save > /dev/null` and
`distrodebug image -o json` read both ways (`--read store`: the engine's layer store, what auto
picks on a local Docker engine; `--read save`: the archive, what Podman and remote engines get),
with /usr/bin/time -v for peak RSS. Prints each round, then
medians; the image is removed afterwards unless --keep. DOCKER_HOST picks the engine (Podman too).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.layered import FAKE_KEY  # noqa: E402

REF = "distrodebug-bench/image-check:1"
BIG = 64 << 20


def timed(argv: list[str], out: Path | None = None) -> tuple[float, float, bytes]:
    """Seconds, peak RSS (MiB) and stdout of a command."""
    start = time.perf_counter()
    with open(out, "wb") if out else open(os.devnull, "wb") as sink:
        proc = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=subprocess.PIPE if out is None
                              else sink, stderr=subprocess.PIPE, check=True)
    seconds = time.perf_counter() - start
    found = re.search(rb"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert found is not None
    return seconds, int(found.group(1)) / 1024, proc.stdout or b""


def _add(tar: tarfile.TarFile, name: str, size: int, source: IO[bytes] | None, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 1700000000
    tar.addfile(info, source)


class _Random:
    """``size`` random-looking bytes without holding them (urandom is slow; a hash chain is not)."""

    def __init__(self, size: int, seed: bytes) -> None:
        self.left = size
        self.block = hashlib.sha512(seed).digest() * 16384  # 1 MiB

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        out = bytearray()
        while len(out) < n:
            self.block = self.block[1:] + self.block[:1]
            out += self.block[: n - len(out)]
        return bytes(out)


def build_archive(path: Path, mib: int, layers: int, small: int) -> None:
    """A docker-archive of the image, written to ``path`` (layers to temporary files first)."""
    per_layer = (mib << 20) // layers
    tmp = path.parent
    diff_ids, names = [], []
    for index in range(layers):
        layer_path = tmp / f"layer{index}.tar"
        with tarfile.open(layer_path, "w") as tar:
            count = small // layers
            for i in range(count):
                _add(tar, f"srv/l{index}/d{i % 100}/f{i}.dat", 2048, _Random(2048, b"%d-%d" % (index, i)))  # type: ignore[arg-type]
            left = per_layer - count * 2048
            n = 0
            while left > 0:
                size = min(BIG, left)
                _add(tar, f"srv/l{index}/big{n}.bin", size, _Random(size, b"big%d-%d" % (index, n)))  # type: ignore[arg-type]
                left -= size
                n += 1
            if index == 1:
                _add(tar, "srv/deploy.pem", len(FAKE_KEY), io.BytesIO(FAKE_KEY))
            if index == 2:
                _add(tar, "srv/.wh.deploy.pem", 0, None)
        digest = hashlib.sha256()
        with open(layer_path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        diff_ids.append(f"sha256:{digest.hexdigest()}")
        names.append(f"{digest.hexdigest()}/layer.tar")
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"User": "65532", "Cmd": ["/app"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"COPY layer{i} /srv/l{i}"} for i in range(layers)],
    }).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [REF], "Layers": names}]).encode()
    with tarfile.open(path, "w") as archive:
        for index, name in enumerate(names):
            layer_path = tmp / f"layer{index}.tar"
            with open(layer_path, "rb") as handle:
                _add(archive, name, layer_path.stat().st_size, handle)
            layer_path.unlink()
        _add(archive, config_name, len(config), io.BytesIO(config))
        _add(archive, "manifest.json", len(manifest), io.BytesIO(manifest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="distrodebug-bench-", dir="/var/tmp") as tmp:
        archive = Path(tmp) / "image.tar"
        t0 = time.perf_counter()
        build_archive(archive, args.mib, args.layers, args.small)
        subprocess.run(["docker", "load", "-q", "-i", str(archive)], check=True, stdout=subprocess.DEVNULL)
        archive.unlink()
        print(f"image {REF}: {args.mib} MiB in {args.layers} layers, {args.small} small files, "
              f"built and loaded in {time.perf_counter() - t0:.1f}s")
        rows: dict[str, list[tuple[float, float]]] = {"docker save -o FILE": [],
                                                       "docker save > /dev/null": [],
                                                       "image --read store": [],
                                                       "image --read save": []}
        try:
            for round_ in range(1, args.rounds + 1):
                saved = Path(tmp) / "saved.tar"
                rows["docker save -o FILE"].append(timed(["docker", "save", "-o", str(saved), REF])[:2])
                size = saved.stat().st_size
                saved.unlink()
                rows["docker save > /dev/null"].append(timed(["docker", "save", REF], Path(os.devnull))[:2])
                figures = []
                for read in ("store", "save"):
                    seconds, rss, out = timed([sys.executable, "-m", "distrodebug", "image", REF,
                                               "-o", "json", "--read", read])
                    rows[f"image --read {read}"].append((seconds, rss))
                    found = {f["rule"]: len(f["items"]) for f in json.loads(out)["findings"]}
                    figures.append(f"image --read {read} {seconds:.2f}s (peak RSS {rss:.0f} MiB, "
                                   f"findings {found})")
                print(f"round {round_}: save -o {rows['docker save -o FILE'][-1][0]:.2f}s "
                      f"({size / 2**20:.0f} MiB), save >/dev/null "
                      f"{rows['docker save > /dev/null'][-1][0]:.2f}s, " + ", ".join(figures))
        finally:
            if not args.keep:
                subprocess.run(["docker", "rmi", "-f", REF], check=False, stdout=subprocess.DEVNULL)
        print("\nmedians:")
        base = statistics.median(s for s, _ in rows["docker save -o FILE"])
        for name, values in rows.items():
            seconds = statistics.median(s for s, _ in values)
            rss = statistics.median(r for _, r in values)
            print(f"  {name:28} {seconds:6.2f}s  {args.mib / seconds:6.0f} MiB/s  peak RSS {rss:5.0f} MiB"
                  f"  ({seconds / base:.2f}x docker save -o)")


if __name__ == "__main__":
    main()
