//! The beat grid of a session in frames: where each beat and bar starts, and the first
//! boundary at or after a frame. Beat `b` starts at `round(b * frames_per_beat)`; bar `k` is
//! beat `k * beats_per_bar`, so bars and beats always agree to the sample.

use super::Quantum;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub sample_rate: u32,
    pub frames_per_beat: f64,
    pub beats_per_bar: u64,
}

impl Grid {
    pub fn new(sample_rate: u32, bar_seconds: f64, beats_per_bar: u32) -> Grid {
        let beats_per_bar = u64::from(beats_per_bar.max(1));
        Grid {
            sample_rate,
            frames_per_beat: bar_seconds * f64::from(sample_rate) / beats_per_bar as f64,
            beats_per_bar,
        }
    }

    /// First frame of beat `beat`.
    pub fn beat_frame(&self, beat: u64) -> u64 {
        (beat as f64 * self.frames_per_beat).round() as u64
    }

    /// First frame of bar `bar`.
    pub fn bar_frame(&self, bar: u64) -> u64 {
        self.beat_frame(bar * self.beats_per_bar)
    }

    /// The beat sounding at `frame`.
    pub fn beat_at(&self, frame: u64) -> u64 {
        let mut beat = (frame as f64 / self.frames_per_beat).floor() as u64;
        while beat > 0 && self.beat_frame(beat) > frame {
            beat -= 1;
        }
        while self.beat_frame(beat + 1) <= frame {
            beat += 1;
        }
        beat
    }

    /// The bar sounding at `frame`.
    pub fn bar_at(&self, frame: u64) -> u64 {
        self.beat_at(frame) / self.beats_per_bar
    }

    /// The first beat that starts at or after `frame`.
    pub fn beat_at_or_after(&self, frame: u64) -> u64 {
        let beat = self.beat_at(frame);
        if self.beat_frame(beat) == frame {
            beat
        } else {
            beat + 1
        }
    }

    /// The first bar that starts at or after `frame`.
    pub fn bar_at_or_after(&self, frame: u64) -> u64 {
        let bar = self.bar_at(frame);
        if self.bar_frame(bar) == frame {
            bar
        } else {
            bar + 1
        }
    }

    /// The first beat or bar boundary at or after `frame` (sections are the session's to
    /// know; here they fall back to bars).
    pub fn boundary_at_or_after(&self, quantum: Quantum, frame: u64) -> u64 {
        match quantum {
            Quantum::Beat => self.beat_frame(self.beat_at_or_after(frame)),
            Quantum::Bar | Quantum::Section => self.bar_frame(self.bar_at_or_after(frame)),
        }
    }

    /// The first section boundary at or after `frame`, for sections of `section_bars` bars
    /// from the next planned boundary at bar `anchor_bar`.
    pub fn section_at_or_after(&self, frame: u64, anchor_bar: u64, section_bars: u64) -> u64 {
        let anchor = self.bar_frame(anchor_bar);
        if frame <= anchor {
            return anchor;
        }
        let bar = self.bar_at_or_after(frame);
        let step = section_bars.max(1);
        let sections = (bar - anchor_bar).div_ceil(step);
        self.bar_frame(anchor_bar + sections * step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_consistent_for_awkward_tempos() {
        for (rate, bar_seconds, beats) in [(48_000, 2.5, 4), (44_100, 60.0 / 87.0 * 3.0, 3)] {
            let grid = Grid::new(rate, bar_seconds, beats);
            for frame in (0..2_000_000u64).step_by(997) {
                let beat = grid.beat_at(frame);
                assert!(grid.beat_frame(beat) <= frame && frame < grid.beat_frame(beat + 1));
                let next = grid.boundary_at_or_after(Quantum::Beat, frame);
                assert!(next >= frame && next - frame < grid.frames_per_beat.ceil() as u64 + 1);
                let bar = grid.boundary_at_or_after(Quantum::Bar, frame);
                assert_eq!(bar, grid.bar_frame(grid.bar_at(bar)));
                assert!(bar >= frame);
                let section = grid.section_at_or_after(frame, 2, 8);
                assert!(section >= frame);
                let bar_of_section = grid.bar_at(section);
                assert!(bar_of_section == 2 || (bar_of_section - 2).is_multiple_of(8));
            }
        }
    }
}
