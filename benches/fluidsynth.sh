#!/usr/bin/env bash
# Times FluidSynth and `refrain render --soundfont` on the same MIDI file and SoundFont,
# alternating runs, and prints each one's median wall time and the ratio.
#
# usage: benches/fluidsynth.sh [SONG.mid] [BANK.sf2] [REFRAIN] [RUNS]
#   SONG.mid  a MIDI file; without one, `REFRAIN generate --seconds 180` writes a 3-minute song
#   BANK.sf2  default: assets/soundfonts/sf_GMbank.sf2 (the shipped bank)
#   REFRAIN   the refrain binary; default: target/release/refrain (or $CARGO_TARGET_DIR's)
#   RUNS      runs of each; default 5
# BANK_LICENCE (environment) is the licence refrain records for the bank (default public-domain).
# Installs Debian's fluidsynth with apt-get if it is missing. Both renders write a 48 kHz WAV.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
song="${1:-}"
bank="${2:-$root/assets/soundfonts/sf_GMbank.sf2}"
refrain="${3:-${CARGO_TARGET_DIR:-$root/target}/release/refrain}"
runs="${4:-5}"

if ! command -v fluidsynth >/dev/null; then
    echo "installing fluidsynth with apt-get" >&2
    apt-get install -y fluidsynth >/dev/null || { apt-get update >/dev/null && apt-get install -y fluidsynth >/dev/null; }
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ -z "$song" ]]; then
    [[ -x "$refrain" ]] || { echo "no MIDI file given and no refrain binary at $refrain" >&2; exit 2; }
    "$refrain" generate --style rock --seconds 180 --seed 1 --out "$work/generated" >/dev/null
    song="$work/generated/song.mid"
fi
[[ -f "$song" ]] || { echo "no MIDI file at $song" >&2; exit 2; }
[[ -f "$bank" ]] || { echo "no SoundFont at $bank" >&2; exit 2; }

# Wall seconds of one command, its output thrown away.
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

fluid_times=()
refrain_times=()
for ((i = 1; i <= runs; i++)); do
    fluid_times+=("$(seconds fluidsynth -ni -F "$work/fluid.wav" -r 48000 -g 0.5 "$bank" "$song")")
    if [[ -x "$refrain" ]]; then
        refrain_times+=("$(seconds "$refrain" render "$song" --out "$work/refrain" --force --soundfont "$bank" --soundfont-licence "${BANK_LICENCE:-public-domain}")")
    fi
done

fluid=$(printf '%s\n' "${fluid_times[@]}" | median)
printf 'song: %s\nbank: %s\n' "$song" "$bank"
printf 'fluidsynth  median of %d: %.3f s  (%s)\n' "$runs" "$fluid" "${fluid_times[*]}"
if ((${#refrain_times[@]})); then
    ours=$(printf '%s\n' "${refrain_times[@]}" | median)
    printf 'refrain     median of %d: %.3f s  (%s)\n' "$runs" "$ours" "${refrain_times[*]}"
    awk -v a="$ours" -v b="$fluid" 'BEGIN { printf "refrain / fluidsynth: %.2f\n", a / b }'
else
    echo "refrain: no binary at $refrain; timed fluidsynth only" >&2
fi
