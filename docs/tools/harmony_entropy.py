#!/usr/bin/env python3
"""Compares the harmony of written songs' plans with the training pieces': per style, the
median entropy (bits) of the chord roots, beat by beat, and of the chord tones they sound,
over the songs' plan.json files and over the dataset's training pieces (all of them, and
those no longer than the longest song, as short songs gather fewer roots).

A song's pitch-class entropy (`evaluate dit`) follows its harmony: the bass plays roots, the
chords and texture play chord tones. This tells a gap that comes from the plan apart from one
the DiT makes.

Usage:
  for style in lofi synthwave rock ambient cinematic chiptune jazz folk; do
    for seed in $(seq 1 12); do
      refrain generate --style $style --seconds 40 --seed $seed --synth-only --out songs/$style-$seed
    done
  done
  python3 docs/tools/harmony_entropy.py DATASET songs/*
"""

import json
import math
import pathlib
import re
import statistics
import sys

INTERVALS = {
    "major": [0, 4, 7], "minor": [0, 3, 7], "diminished": [0, 3, 6], "augmented": [0, 4, 8],
    "sus2": [0, 2, 7], "sus4": [0, 5, 7], "major7": [0, 4, 7, 11], "minor7": [0, 3, 7, 10],
    "dominant7": [0, 4, 7, 10], "half_diminished7": [0, 3, 6, 10], "major6": [0, 4, 7, 9],
    "minor6": [0, 3, 7, 9], "add9": [0, 4, 7, 2], "minor9": [0, 3, 7, 10, 2],
    "major9": [0, 4, 7, 11, 2], "dominant9": [0, 4, 7, 10, 2],
}
SYMBOLS = {
    "": "major", "m": "minor", "dim": "diminished", "aug": "augmented", "sus2": "sus2",
    "sus4": "sus4", "maj7": "major7", "m7": "minor7", "7": "dominant7",
    "m7b5": "half_diminished7", "6": "major6", "m6": "minor6", "add9": "add9", "m9": "minor9",
    "maj9": "major9", "9": "dominant9",
}
LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def entropy(counts):
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values() if c)


def harmony(chords):
    """(root entropy, chord-tone entropy) of (root, quality) pairs, one per beat."""
    roots, tones = {}, {}
    for root, quality in chords:
        roots[root % 12] = roots.get(root % 12, 0) + 1
        for interval in INTERVALS[quality]:
            pitch = (root + interval) % 12
            tones[pitch] = tones.get(pitch, 0) + 1
    return entropy(roots), entropy(tones)


def parse_symbol(symbol):
    match = re.fullmatch(r"([A-G])([#b]?)(.*)", symbol)
    if not match or match.group(3) not in SYMBOLS:
        raise ValueError(f"unknown chord symbol {symbol!r}")
    shift = {"#": 1, "b": -1, "": 0}[match.group(2)]
    return LETTERS[match.group(1)] + shift, SYMBOLS[match.group(3)]


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    songs = {}
    for folder in sys.argv[2:]:
        plan = json.loads((pathlib.Path(folder) / "plan.json").read_text())
        chords = [parse_symbol(c) for bar in plan["chords_per_bar"] for c in bar.split()]
        songs.setdefault(plan["style"], []).append((plan["bars"], harmony(chords)))
    pieces = {}
    for path in sorted(pathlib.Path(sys.argv[1]).glob("pieces-*.jsonl")):
        for line in path.open():
            piece = json.loads(line)
            if piece["split"] != "train" or piece["style"] not in songs:
                continue
            chords = [(c["root"], c["quality"]) for c in piece["chords"]["per_beat"]]
            pieces.setdefault(piece["style"], []).append((piece["bars"], harmony(chords)))
    print("| style | songs | plans: roots, chord tones | training pieces | pieces of the songs' "
          "lengths at most |")
    print("|---|---|---|---|---|")
    for style, written in songs.items():
        longest = max(bars for bars, _ in written)
        short = [h for bars, h in pieces.get(style, []) if bars <= longest]

        def medians(rows):
            if not rows:
                return "none"
            return "%.2f, %.2f (%d)" % (statistics.median(r[0] for r in rows),
                                        statistics.median(r[1] for r in rows), len(rows))
        print(f"| {style} | {len(written)} | {medians([h for _, h in written])} | "
              f"{medians([h for _, h in pieces.get(style, [])])} | {medians(short)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
