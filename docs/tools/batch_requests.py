#!/usr/bin/env python3
"""Writes N batch requests of exact length, cycling through every style, mood, meter and a
spread of keys, one JSON object per line (the request files of docs/SCALE.md).

Usage: python3 docs/tools/batch_requests.py N [SECONDS] > requests.jsonl
"""

import json
import sys

STYLES = ["lofi", "synthwave", "rock", "ambient", "cinematic", "chiptune", "jazz", "folk"]
MOODS = ["calm", "happy", "sad", "dark", "epic", "dreamy", "energetic", "tense", "romantic",
         "nostalgic"]
KEYS = ["C major", "A minor", "D major", "F# minor", "Bb major", "E dorian", "G major",
        "C# minor", "Eb major", "B minor", "F major"]
METERS = ["4/4", "4/4", "3/4", "6/8"]


def main() -> None:
    count = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
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
        print(json.dumps(request, ensure_ascii=False))


if __name__ == "__main__":
    main()
