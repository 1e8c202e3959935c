//! How the benchmark's requests are spread over tenants: all on one, uniformly over the
//! first K, or Zipf-distributed over the first K (a few tenants busy, a long tail idle,
//! which is what a real fleet looks like), drawn from a deterministic generator so that
//! every run sends the same requests.

/// A spread of requests over tenants `0..tenants` (0 is `t1`, the pinned tenant).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spread {
    /// Every request to tenant 0.
    Pinned,
    /// Uniform over the first `tenants`.
    Uniform { tenants: usize },
    /// Zipf with exponent `s` over the first `tenants`, tenant 0 the busiest.
    Zipf { tenants: usize, s: f64 },
}

impl Spread {
    /// How many tenants the spread touches.
    pub fn tenants(self) -> usize {
        match self {
            Spread::Pinned => 1,
            Spread::Uniform { tenants } | Spread::Zipf { tenants, .. } => tenants,
        }
    }

    /// A short label for tables and file names ("pinned", "uniform-100", "zipf1.1-100").
    pub fn label(self) -> String {
        match self {
            Spread::Pinned => "pinned".to_owned(),
            Spread::Uniform { tenants } => format!("uniform-{tenants}"),
            Spread::Zipf { tenants, s } => format!("zipf{s}-{tenants}"),
        }
    }

    /// The sampler of this spread.
    pub fn sampler(self) -> Sampler {
        match self {
            Spread::Pinned => Sampler::Uniform(1),
            Spread::Uniform { tenants } => Sampler::Uniform(tenants.max(1)),
            Spread::Zipf { tenants, s } => {
                let mut cumulative = Vec::with_capacity(tenants);
                let mut total = 0.0;
                for rank in 1..=tenants.max(1) {
                    total += 1.0 / (rank as f64).powf(s);
                    cumulative.push(total);
                }
                for c in &mut cumulative {
                    *c /= total;
                }
                Sampler::Cumulative(cumulative)
            }
        }
    }
}

/// Draws tenant indexes for a [`Spread`].
pub enum Sampler {
    Uniform(usize),
    /// Normalised cumulative weights, one per tenant.
    Cumulative(Vec<f64>),
}

impl Sampler {
    /// The tenant index for the next request.
    pub fn next(&self, rng: &mut SplitMix) -> usize {
        match self {
            Sampler::Uniform(n) => rng.below(*n),
            Sampler::Cumulative(cumulative) => {
                let u = rng.unit();
                cumulative.partition_point(|c| *c < u).min(cumulative.len() - 1)
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so that every run draws the same requests.
pub struct SplitMix(pub u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
