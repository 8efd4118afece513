//! Engine integration tests: the whole compose path (plan -> lead sheet -> arrangement) over
//! every style, meter and many seeds, checked on what a listener and the models depend on.

mod live;

use refrain_engine::generate;
use refrain_engine::music::{Meter, Song, Stem, Style};
use refrain_engine::plan::Request;
use refrain_engine::planes::notes_to_planes;

fn compose(request: &Request) -> Song {
    generate::arrange_request(request)
        .expect("a valid request")
        .1
}

fn in_scale_ratio(song: &Song) -> f64 {
    let pitched: Vec<i32> = song
        .stems
        .iter()
        .filter(|t| t.stem.is_pitched())
        .flat_map(|t| t.notes.iter().map(|n| n.pitch))
        .collect();
    let inside = pitched
        .iter()
        .filter(|&&p| song.key.contains_relative(p))
        .count();
    inside as f64 / pitched.len().max(1) as f64
}

#[test]
fn every_style_meter_and_seed_gives_a_full_in_key_song_the_models_can_read() {
    let mut worst = (1.0f64, String::new());
    for style in Style::ALL {
        for meter in Meter::ALL {
            for seed in 0..6u64 {
                let request = Request {
                    style: Some(style),
                    meter: Some(meter),
                    seconds: Some(45.0),
                    seed,
                    ..Request::default()
                };
                let song = compose(&request);
                let label = format!("{style} {meter} seed {seed}");
                for track in &song.stems {
                    notes_to_planes(track.stem, song.meter, song.bars, &track.notes)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                }
                assert!(
                    song.stem(Stem::Drums).is_some_and(|t| !t.notes.is_empty()),
                    "{label}: no drums"
                );
                let pitched_playing = song
                    .stems
                    .iter()
                    .filter(|t| t.stem.is_pitched() && !t.notes.is_empty())
                    .count();
                assert!(
                    pitched_playing >= 3,
                    "{label}: {pitched_playing} pitched stems"
                );
                let ratio = in_scale_ratio(&song);
                if ratio < worst.0 {
                    worst = (ratio, label);
                }
            }
        }
    }
    eprintln!("worst scale fit {:.3} in {}", worst.0, worst.1);
    assert!(
        worst.0 >= 0.95,
        "worst scale fit {:.3} in {}",
        worst.0,
        worst.1
    );
}

#[test]
fn seeds_give_different_songs_and_equal_seeds_equal_songs() {
    let request = |seed| Request {
        style: Some(Style::Folk),
        seconds: Some(30.0),
        seed,
        ..Request::default()
    };
    assert_eq!(compose(&request(9)), compose(&request(9)));
    let lead = |seed| {
        compose(&request(seed))
            .stem(Stem::Lead)
            .map(|t| t.notes.clone())
    };
    assert_ne!(lead(9), lead(10));
}
