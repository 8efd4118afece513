#!/usr/bin/env python3
"""Checks a `refrain batch` output folder against the audio bounds of DESIGN.md, from each
song's manifest: integrated loudness -14 +/- 0.5 LUFS, true peak <= -1 dBTP, and exactly
seconds x sample-rate frames; and sums up the critic scores of summary*.jsonl.

Usage: python3 docs/tools/check_batch.py DIR   (exit status 1 when a song is outside them)
"""

import json
import pathlib
import sys


def main() -> int:
    out = pathlib.Path(sys.argv[1])
    manifests = sorted(out.glob("*/manifest.json"))
    outside = []
    lufs, peaks = [], []
    for path in manifests:
        m = json.loads(path.read_text())
        lufs.append(m["loudness_lufs"])
        peaks.append(m["true_peak_dbtp"])
        if not (abs(m["loudness_lufs"] + 14.0) <= 0.5 and m["true_peak_dbtp"] <= -1.0
                and m["frames"] == round(m["seconds"] * m["sample_rate"])):
            outside.append((path.parent.name, m["loudness_lufs"], m["true_peak_dbtp"], m["frames"]))
    if not manifests:
        print(f"no songs in {out}")
        return 1
    print(f"{len(manifests) - len(outside)}/{len(manifests)} songs within -14 +/- 0.5 LUFS, "
          f"<= -1 dBTP and exact length; LUFS {min(lufs)} to {max(lufs)}, "
          f"true peak {min(peaks)} to {max(peaks)} dBTP")
    scores, errors = [], 0
    for summary in sorted(out.glob("summary*.jsonl")):
        for line in summary.read_text().splitlines():
            item = json.loads(line)
            errors += item["status"] == "error"
            if "critic_score" in item:
                scores.append(item["critic_score"])
    if scores:
        print(f"critic score: mean {sum(scores) / len(scores):.3f} over {len(scores)} songs, "
              f"{min(scores)} to {max(scores)}")
    print(f"requests in error: {errors}")
    for song in outside:
        print("outside the bounds:", *song)
    return 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
