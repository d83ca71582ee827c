//! Flexible quorums in the simulator (rule M4): half the seeds run with
//! majorities, the other half with a phase-1/phase-2 pair drawn from every
//! valid one, on a stream of their own so that the seed's other draws are
//! those it always had.

use crate::rng::Rng;

/// The configured sizes of a run: `(phase1, phase2)`, `None` for a
/// majority (as `paxos_core::Config` takes them).
pub type Sizes = (Option<usize>, Option<usize>);

/// Majorities for both phases.
pub const MAJORITIES: Sizes = (None, None);

/// Draws the sizes for `seed` on `voters` voters: majorities for half the
/// seeds; otherwise `Q2` uniform in `[2, voters]` and `Q1` uniform among
/// the sizes that meet it, `[voters - Q2 + 1, voters]`.
pub fn draw(seed: u64, voters: u64) -> Sizes {
    let mut rng = Rng::new(seed ^ 0x0f1e_c5ab_1e00);
    if voters < 2 || rng.chance(0.5) {
        return MAJORITIES;
    }
    let q2 = rng.range_inclusive(2, voters);
    let q1 = rng.range_inclusive(voters - q2 + 1, voters);
    let size = |q: u64| usize::try_from(q).ok();
    (size(q1), size(q2))
}

/// Parses `Q1/Q2` (`3/2`), with `m` for a majority (`m/2`), or `majority`.
pub fn parse(s: &str) -> Result<Sizes, String> {
    if s == "majority" {
        return Ok(MAJORITIES);
    }
    let (a, b) = s
        .split_once('/')
        .ok_or_else(|| format!("quorums {s:?}: expected Q1/Q2, e.g. 4/2, m/3 or majority"))?;
    let one = |q: &str| -> Result<Option<usize>, String> {
        match q {
            "m" => Ok(None),
            q => q
                .parse()
                .map(Some)
                .map_err(|e| format!("quorum size {q:?}: {e}")),
        }
    };
    Ok((one(a)?, one(b)?))
}

/// Shows sizes as `parse` reads them.
pub fn show(sizes: Sizes) -> String {
    let one = |q: Option<usize>| q.map_or_else(|| "m".to_string(), |q| q.to_string());
    match sizes {
        MAJORITIES => "majority".to_string(),
        (a, b) => format!("{}/{}", one(a), one(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_pairs_are_valid_and_half_are_flexible() {
        let mut flexible = 0;
        for seed in 0..1000 {
            for voters in [3u64, 5, 7] {
                let sizes = draw(seed, voters);
                let cfg = paxos_core::Config {
                    phase1_quorum: sizes.0,
                    phase2_quorum: sizes.1,
                    ..paxos_core::Config::new(1, (1..=voters).collect::<Vec<_>>())
                };
                assert_eq!(cfg.validate(), Ok(()), "{sizes:?} on {voters}");
                flexible += usize::from(sizes != MAJORITIES);
            }
        }
        assert!((1200..1800).contains(&flexible), "{flexible} of 3000");
    }

    #[test]
    fn parse_and_show_round_trip() {
        for s in ["majority", "4/2", "m/3", "2/m"] {
            assert_eq!(show(parse(s).expect("parses")), s);
        }
        assert!(parse("4").is_err());
        assert!(parse("x/2").is_err());
    }
}
