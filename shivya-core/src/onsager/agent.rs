//! Agent settings shared by every group of coupled agents, and the one diffusion step.
//!
//! The ensemble ([`super::OnsagerCollectiveEnsemble`]) and a mesh node's own agent
//! (`crate::mesh::BeliefState`) configure their agents and diffuse beliefs through these,
//! so the two cannot drift apart.

use super::OnsagerError;
use crate::flux::FluxConfig;
use crate::morphic::MorphicConfig;

/// Settings of one active-inference agent (L1, L2) and of its coupling to others (L3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentConfig {
    /// Prior variance of the starting model.
    pub prior_var: f64,
    /// Sensory noise variance.
    pub sensory_var: f64,
    /// L1 descent settings.
    pub flux: FluxConfig,
    /// L2 settings (the owner mixes its own identity into the seed).
    pub morphic: MorphicConfig,
    /// L3 diffusion rate `r`, clamped by [`diffusion_rate`].
    pub diffusion_rate: f64,
    /// L3 synergy temperature `T` of the coalition game.
    pub synergy_temperature: f64,
    /// Process noise added when the posterior becomes the next prior.
    pub process_noise: f64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            prior_var: 4.0,
            sensory_var: 0.5,
            flux: FluxConfig::default(),
            morphic: MorphicConfig::default(),
            diffusion_rate: 0.1,
            synergy_temperature: 1.0,
            process_noise: 0.01,
        }
    }
}

impl AgentConfig {
    /// Checks every number: variances and the temperature finite and positive, the
    /// diffusion rate and process noise finite and non-negative.
    pub fn validate(&self) -> Result<(), OnsagerError> {
        for (what, value) in [
            ("prior_var", self.prior_var),
            ("sensory_var", self.sensory_var),
            ("synergy_temperature", self.synergy_temperature),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                return Err(OnsagerError::Config {
                    what,
                    value,
                    why: "must be finite and positive",
                });
            }
        }
        for (what, value) in [
            ("diffusion_rate", self.diffusion_rate),
            ("process_noise", self.process_noise),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(OnsagerError::Config {
                    what,
                    value,
                    why: "must be finite and non-negative",
                });
            }
        }
        Ok(())
    }
}

/// The diffusion rate actually used: `rate`, clamped so that `rate · weight_bound ≤ ½`
/// (the explicit step is then stable and never overshoots); 0 when nothing is coupled.
/// `weight_bound` is the largest coupling row sum the caller knows of: the ensemble knows
/// every row and passes the maximum, a mesh node knows only its own row.
pub fn diffusion_rate(rate: f64, weight_bound: f64) -> f64 {
    if weight_bound > 0.0 {
        rate.min(0.5 / weight_bound)
    } else {
        0.0
    }
}

/// One diffusion step for one agent: adds `rate · Σ_j L_ij (μ_j − μ_i)` to `delta`, over
/// the dimensions `mine` and each neighbour's mean have in common. `neighbours` yields
/// `(L_ij, μ_j)`. Computing every agent's delta from the old means before applying any
/// keeps the total belief conserved up to rounding.
pub fn add_diffusion<'a>(
    rate: f64,
    mine: &[f64],
    neighbours: impl Iterator<Item = (f64, &'a [f64])>,
    delta: &mut [f64],
) {
    for (w, theirs) in neighbours {
        let n = mine.len().min(theirs.len()).min(delta.len());
        for k in 0..n {
            delta[k] += rate * w * (theirs[k] - mine[k]);
        }
    }
}
