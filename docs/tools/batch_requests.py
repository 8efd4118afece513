#!/usr/bin/env python3
"""Writes N batch requests of exact length, cycling through every style, mood, meter and a
spread of keys, one JSON object per line (the request files of docs/SCALE.md).

Usage: python3 docs/tools/batch_requests.py N [SECONDS] [--loop-every K] > requests.jsonl

With --loop-every K, every K-th request is a seamless loop (`"loop": true`). A loop must be a
whole number of bars, so those requests are in 4/4 at a tempo inside the style's range where
SECONDS is a whole number of bars (bpm a multiple of 8 for 30 s: bars = bpm x SECONDS / 240).
"""

import json
import sys

STYLES = ["lofi", "synthwave", "rock", "ambient", "cinematic", "chiptune", "jazz", "folk"]
MOODS = ["calm", "happy", "sad", "dark", "epic", "dreamy", "energetic", "tense", "romantic",
         "nostalgic"]
KEYS = ["C major", "A minor", "D major", "F# minor", "Bb major", "E dorian", "G major",
        "C# minor", "Eb major", "B minor", "F major"]
METERS = ["4/4", "4/4", "3/4", "6/8"]
# Typical tempo range per style (engine/src/plan.rs `tempo_range`).
TEMPO_RANGES = {"lofi": (70, 92), "synthwave": (96, 118), "rock": (108, 140),
                "ambient": (60, 80), "cinematic": (70, 100), "chiptune": (128, 160),
                "jazz": (100, 150), "folk": (96, 126)}


def loop_bpm(style: str, seconds: float) -> int:
    """A bpm inside the style's range (nearest its middle) at which `seconds` of 4/4 is a
    whole number of bars."""
    lo, hi = TEMPO_RANGES[style]
    middle = (lo + hi) / 2
    fitting = [bpm for bpm in range(lo, hi + 1) if (bpm * seconds / 240).is_integer()]
    if not fitting:
        sys.exit(f"no tempo in {lo}..{hi} bpm makes {seconds} s a whole number of 4/4 bars")
    return min(fitting, key=lambda bpm: abs(bpm - middle))


def main() -> None:
    args = sys.argv[1:]
    loop_every = 0
    if "--loop-every" in args:
        at = args.index("--loop-every")
        loop_every = int(args[at + 1])
        del args[at : at + 2]
    count = int(args[0])
    seconds = float(args[1]) if len(args) > 1 else 30.0
    for i in range(count):
        request = {
            "id": f"{STYLES[i % len(STYLES)]}-{i:04d}",
            "style": STYLES[i % len(STYLES)],
            "mood": MOODS[(i // len(STYLES)) % len(MOODS)],
            "key": KEYS[i % len(KEYS)],
            "meter": METERS[(i // 3) % len(METERS)],
            "seconds": seconds,
            "seed": i + 1,
        }
        if loop_every and i % loop_every == loop_every - 1:
            request["meter"] = "4/4"
            request["bpm"] = loop_bpm(request["style"], seconds)
            request["loop"] = True
        print(json.dumps(request, ensure_ascii=False))


if __name__ == "__main__":
    main()
