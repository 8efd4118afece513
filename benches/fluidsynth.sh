#!/usr/bin/env bash
# Times FluidSynth and `refrain render --soundfont` on the same MIDI file and SoundFont,
# alternating runs, and prints each one's median wall time and the ratios. refrain runs two
# ways: like for like (`--mix-only --bit-depth 16`: one 16-bit stereo WAV, as FluidSynth
# writes; refrain still mixes and masters every stem) and in full (the mix and five stems at
# 24 bits, the default).
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

fluid_run() { seconds fluidsynth -ni -F "$work/fluid.wav" -r 48000 -g 0.5 "$bank" "$song"; }
mix_run() { seconds "$refrain" render "$song" --out "$work/refrain" --force --mix-only --bit-depth 16 --soundfont "$bank" --soundfont-licence "${BANK_LICENCE:-public-domain}"; }
full_run() { seconds "$refrain" render "$song" --out "$work/refrain" --force --soundfont "$bank" --soundfont-licence "${BANK_LICENCE:-public-domain}"; }

# One untimed run of each first (file cache, bank loading). Before every timed run, `sync`
# (untimed) writes back what the previous run left in the page cache, so no run pays for
# another's output; and the order of the three turns round every run.
tools=(fluid)
[[ -x "$refrain" ]] && tools+=(mix full)
for tool in "${tools[@]}"; do "${tool}_run" >/dev/null; done
fluid_times=()
refrain_times=()
full_times=()
for ((i = 0; i < runs; i++)); do
    for ((k = 0; k < ${#tools[@]}; k++)); do
        tool=${tools[$(((i + k) % ${#tools[@]}))]}
        sync
        t=$("${tool}_run")
        case $tool in
            fluid) fluid_times+=("$t") ;;
            mix) refrain_times+=("$t") ;;
            full) full_times+=("$t") ;;
        esac
    done
done

fluid=$(printf '%s\n' "${fluid_times[@]}" | median)
printf 'song: %s\nbank: %s\n' "$song" "$bank"
printf 'fluidsynth  median of %d: %.3f s  (%s)\n' "$runs" "$fluid" "${fluid_times[*]}"
if ((${#refrain_times[@]})); then
    ours=$(printf '%s\n' "${refrain_times[@]}" | median)
    full=$(printf '%s\n' "${full_times[@]}" | median)
    printf 'refrain --mix-only --bit-depth 16  median of %d: %.3f s  (%s)\n' "$runs" "$ours" "${refrain_times[*]}"
    printf 'refrain, mix + stems at 24 bits    median of %d: %.3f s  (%s)\n' "$runs" "$full" "${full_times[*]}"
    awk -v a="$ours" -v b="$fluid" 'BEGIN { printf "refrain / fluidsynth, like for like: %.2f\n", a / b }'
    awk -v a="$full" -v b="$fluid" 'BEGIN { printf "refrain / fluidsynth, refrain in full: %.2f\n", a / b }'
else
    echo "refrain: no binary at $refrain; timed fluidsynth only" >&2
fi
