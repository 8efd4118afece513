#!/usr/bin/env python3
"""Checks the songs of a `refrain batch` output folder against the audio bounds and records a
sha256 of every file, while the batch runs or after it.

usage: benches/batch_check.py OUT RECORD.json [--expect N] [--delete-audio] [--seconds S]

For each finished item (a folder with manifest.json; `refrain batch` renames a folder into
place only when it is complete):
  - loudness within -14 +/- 0.5 LUFS and true peak <= -1 dBTP (the master's EBU R128
    measurement, from manifest.json);
  - mix.wav holds exactly `seconds x sample rate` frames (read from its header) and no clipped
    sample (no 24-bit or 16-bit full-scale value);
  - sha256 of every file, so two runs (e.g. one killed and resumed, one uninterrupted) can be
    compared file by file with `cmp` of their records' "files".
With --delete-audio the WAVs are deleted once checked, so a 1000-song run fits on a small disk
(a rerun of the batch still skips the item: it looks for manifest.json). Polls until --expect
items are checked (default: checks what is there once and stops).
"""

import hashlib
import json
import os
import sys
import time
import wave

import numpy as np


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mix_check(path, seconds):
    with wave.open(path, "rb") as w:
        rate, width, channels, frames = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
        raw = w.readframes(frames)
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        samples = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = np.where(samples >= 1 << 23, samples - (1 << 24), samples)
        full = (1 << 23) - 1
    else:
        samples = np.frombuffer(raw, dtype=np.int16).astype(np.int32)
        full = (1 << 15) - 1
    clipped = int(np.count_nonzero((samples >= full) | (samples <= -full - 1)))
    return {
        "frames": frames,
        "frames_expected": round(seconds * rate),
        "channels": channels,
        "clipped": clipped,
    }


def check(folder, seconds, delete):
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    found = {
        "loudness_lufs": manifest.get("loudness_lufs"),
        "true_peak_dbtp": manifest.get("true_peak_dbtp"),
    }
    found.update(mix_check(os.path.join(folder, "mix.wav"), manifest.get("seconds", seconds)))
    files = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            files[os.path.relpath(path, folder)] = sha256(path)
    found["files"] = dict(sorted(files.items()))
    found["ok"] = (
        found["loudness_lufs"] is not None
        and abs(found["loudness_lufs"] + 14.0) <= 0.5
        and found["true_peak_dbtp"] is not None
        and found["true_peak_dbtp"] <= -1.0
        and found["frames"] == found["frames_expected"]
        and found["clipped"] == 0
    )
    if delete:
        for root, _, names in os.walk(folder):
            for name in names:
                if name.endswith(".wav"):
                    os.remove(os.path.join(root, name))
    return found


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    out, record_path = args[0], args[1]
    expect = int(flags[flags.index("--expect") + 1]) if "--expect" in flags else 0
    seconds = float(flags[flags.index("--seconds") + 1]) if "--seconds" in flags else 30.0
    delete = "--delete-audio" in flags
    record = json.load(open(record_path)) if os.path.exists(record_path) else {}
    while True:
        for name in sorted(os.listdir(out)):
            folder = os.path.join(out, name)
            if name.startswith(".") or name in record or not os.path.isfile(os.path.join(folder, "manifest.json")):
                continue
            if not os.path.isfile(os.path.join(folder, "mix.wav")):
                continue  # checked by an earlier watcher whose record was lost: nothing to read
            record[name] = check(folder, seconds, delete)
        with open(record_path + ".partial", "w") as f:
            json.dump(record, f, indent=0, sort_keys=True)
        os.replace(record_path + ".partial", record_path)
        if len(record) >= expect:
            break
        time.sleep(2)
    bad = [name for name, r in record.items() if not r["ok"]]
    loud = [r["loudness_lufs"] for r in record.values()]
    peaks = [r["true_peak_dbtp"] for r in record.values()]
    print(
        f"{len(record)} songs checked: {len(record) - len(bad)} within the bounds"
        + (f" (loudness {min(loud):.2f} .. {max(loud):.2f} LUFS, true peak at most {max(peaks):.2f} dBTP, "
           f"{sum(r['clipped'] for r in record.values())} clipped samples, "
           f"{sum(r['frames'] == r['frames_expected'] for r in record.values())} exact in length)" if record else "")
    )
    if bad:
        print("outside the bounds:", ", ".join(bad[:20]))
        sys.exit(1)


if __name__ == "__main__":
    main()
