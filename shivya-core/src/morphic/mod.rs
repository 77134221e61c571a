//! L2 — morphic: a sandboxed register VM, evolved update laws and latent expansion.
//!
//! * [`Expr`] trees compile to [`Program`]s for a register machine with a fixed file of
//!   [`REGISTERS`] registers and a hard budget of [`CYCLE_BUDGET`] instructions per
//!   evaluation. Evaluation never allocates; every fault (budget, division by zero, bad
//!   register, input or constant index, falling off the end) is a [`VmError`].
//! * The agent's *update law* is such a program: per latent coordinate it maps
//!   `(μ_i, ∂F/∂μ_i, (Σ_q ∇F)_i)` to the change of `μ_i` (the default law is
//!   `−(Σ_q ∇F)_i`, the natural-gradient step). A law that faults falls back to the default.
//! * [`MorphicController`] watches a moving average of free energy. When it stays above a
//!   novelty threshold, the agent gains a latent dimension whose generative column points
//!   along the persistent prediction error (the part of the observations the model does
//!   not explain), and the law is re-mutated by a seeded hill-climb ([`hill_climb`]) with
//!   free energy as the fitness. That is genetic programming with a free-energy fitness,
//!   nothing grander.
//! * [`parse_law`] reads a law from text over named inputs (an operator's own weight law
//!   for the balancer, say), bounded in length and nesting.

mod ast;
mod parse;
mod search;
mod vm;

pub use ast::{BinOp, Expr, UnOp};
pub use parse::{parse_law, ParseError, MAX_LAW_DEPTH, MAX_LAW_LEN};
pub use search::{hill_climb, mutate, random_tree, SearchConfig, SearchOutcome};
pub use vm::{Instr, Program, CYCLE_BUDGET, REGISTERS};

use crate::flux::{FluxConfig, GibbsFluxAgent, StepRule, SubstrateError, UpdateReport};
use crate::rng::Rng;
use thiserror::Error;

/// A fault while compiling or running a program.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum VmError {
    /// The cycle budget ran out.
    #[error("cycle budget exhausted after {cycles} instructions")]
    BudgetExhausted {
        /// Instructions executed.
        cycles: u32,
    },
    /// A division by zero.
    #[error("division by zero at instruction {pc}")]
    DivisionByZero {
        /// Instruction index.
        pc: usize,
    },
    /// A register index outside the register file.
    #[error("instruction {pc} names register {reg}; there are 16")]
    BadRegister {
        /// Instruction index.
        pc: usize,
        /// The register named.
        reg: u8,
    },
    /// An input index the caller did not provide.
    #[error("instruction {pc} reads input {index} but {available} inputs were given")]
    BadInput {
        /// Instruction index.
        pc: usize,
        /// The input named.
        index: u8,
        /// Inputs provided.
        available: usize,
    },
    /// A constant-pool index past the pool.
    #[error("instruction {pc} reads constant {index}, past the pool")]
    BadConstant {
        /// Instruction index.
        pc: usize,
        /// The constant named.
        index: u16,
    },
    /// Execution ran past the last instruction without `Ret`.
    #[error("execution reached instruction {pc}, past the end, without a return")]
    NoReturn {
        /// Instruction index.
        pc: usize,
    },
    /// The expression needs more registers than the file has.
    #[error("expression needs {needed} registers; the file has 16")]
    TooManyRegisters {
        /// Registers needed.
        needed: usize,
    },
    /// The program is longer than the cycle budget could ever run.
    #[error("program of {len} instructions exceeds the 500-cycle budget")]
    ProgramTooLong {
        /// Instructions.
        len: usize,
    },
}

impl VmError {
    /// The kind of fault, ignoring where it happened.
    pub fn kind(&self) -> std::mem::Discriminant<VmError> {
        std::mem::discriminant(self)
    }
}

/// The update law as a [`StepRule`]: runs `program` once per coordinate.
pub struct LawRule<'a> {
    /// The compiled law.
    pub program: &'a Program,
}

impl StepRule for LawRule<'_> {
    fn step(
        &mut self,
        mean: &[f64],
        gradient: &[f64],
        natural_gradient: &[f64],
        delta: &mut [f64],
    ) -> Result<(), SubstrateError> {
        for i in 0..delta.len() {
            let inputs = [mean[i], gradient[i], natural_gradient[i]];
            delta[i] = self
                .program
                .eval(&inputs)
                .map_err(|e| SubstrateError::StepRule(e.to_string()))?;
        }
        Ok(())
    }
}

/// The default law, `−x2` (minus the natural gradient).
pub fn default_law() -> Expr {
    Expr::Unary(UnOp::Neg, Box::new(Expr::Input(2)))
}

/// Settings of latent expansion and law search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MorphicConfig {
    /// Moving-average window of free energy (steps).
    pub window: usize,
    /// Expansion fires when the windowed mean free energy exceeds this.
    pub novelty_threshold: f64,
    /// Largest latent dimension.
    pub max_dim: usize,
    /// Prior variance of a new latent coordinate.
    pub new_dim_prior_var: f64,
    /// Hill-climb settings for re-mutating the law.
    pub search: SearchConfig,
    /// Descent iterations each candidate law gets when scored.
    pub fitness_iterations: usize,
    /// Seed of the search.
    pub seed: u64,
}

impl Default for MorphicConfig {
    fn default() -> Self {
        MorphicConfig {
            window: 8,
            novelty_threshold: 25.0,
            max_dim: 6,
            new_dim_prior_var: 1.0,
            search: SearchConfig {
                iterations: 48,
                max_nodes: 15,
                inputs: 3,
            },
            fitness_iterations: 2,
            seed: 0x5eed,
        }
    }
}

/// What one controlled update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MorphicReport {
    /// The L1 update.
    pub update: UpdateReport,
    /// The law faulted and the default rule was used instead.
    pub law_fallback: bool,
    /// A latent dimension was added after this update.
    pub expanded: bool,
}

/// Drives one agent's updates through its evolved law and expands its latent space.
#[derive(Debug, Clone)]
pub struct MorphicController {
    config: MorphicConfig,
    law: Expr,
    program: Program,
    history: Vec<f64>,
    filled: usize,
    next: usize,
    residual: Vec<f64>,
    last_obs: Vec<f64>,
    pred: Vec<f64>,
    rng: Rng,
    expansions: usize,
}

impl MorphicController {
    /// A controller for agents with `obs_dim` observations, starting from the default law.
    pub fn new(config: MorphicConfig, obs_dim: usize) -> Result<Self, SubstrateError> {
        if config.window == 0 {
            return Err(SubstrateError::Config {
                what: "window",
                value: 0.0,
                why: "must be at least 1",
            });
        }
        if !config.novelty_threshold.is_finite() {
            return Err(SubstrateError::Config {
                what: "novelty_threshold",
                value: config.novelty_threshold,
                why: "must be finite",
            });
        }
        let law = default_law();
        let program =
            Program::compile(&law).map_err(|e| SubstrateError::StepRule(e.to_string()))?;
        Ok(MorphicController {
            config,
            law,
            program,
            history: vec![0.0; config.window],
            filled: 0,
            next: 0,
            residual: vec![0.0; obs_dim],
            last_obs: vec![0.0; obs_dim],
            pred: vec![0.0; obs_dim],
            rng: Rng::new(config.seed),
            expansions: 0,
        })
    }

    /// The current law.
    pub fn law(&self) -> &Expr {
        &self.law
    }

    /// Windowed mean free energy (`None` until the window has filled).
    pub fn moving_average(&self) -> Option<f64> {
        (self.filled >= self.history.len())
            .then(|| self.history.iter().sum::<f64>() / self.history.len() as f64)
    }

    /// Expansions so far.
    pub fn expansions(&self) -> usize {
        self.expansions
    }

    /// Updates `agent` with `obs` through the law (default rule if the law faults), then
    /// expands the latent space if the moving-average free energy is above threshold.
    pub fn update(
        &mut self,
        agent: &mut GibbsFluxAgent,
        obs: &[f64],
    ) -> Result<MorphicReport, SubstrateError> {
        let mut rule = LawRule {
            program: &self.program,
        };
        let (update, law_fallback) = match agent.update_with(obs, &mut rule) {
            Ok(r) => (r, false),
            Err(SubstrateError::StepRule(_)) => (agent.update(obs)?, true),
            Err(e) => return Err(e),
        };
        if self.residual.len() != obs.len() {
            return Err(SubstrateError::Dimension {
                what: "observation",
                expected: self.residual.len(),
                got: obs.len(),
            });
        }
        self.last_obs.copy_from_slice(obs);
        agent.predict(&mut self.pred)?;
        // Exponential average of what the model fails to explain.
        let w = 1.0 / self.config.window as f64;
        for i in 0..obs.len() {
            self.residual[i] += w * ((obs[i] - self.pred[i]) - self.residual[i]);
        }
        self.history[self.next] = update.free_energy;
        self.next = (self.next + 1) % self.history.len();
        self.filled = (self.filled + 1).min(self.history.len());
        let mut expanded = false;
        if let Some(avg) = self.moving_average() {
            if avg > self.config.novelty_threshold && agent.dim() < self.config.max_dim {
                expanded = self.expand(agent)?;
            }
        }
        Ok(MorphicReport {
            update,
            law_fallback,
            expanded,
        })
    }

    fn expand(&mut self, agent: &mut GibbsFluxAgent) -> Result<bool, SubstrateError> {
        let norm = self.residual.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(norm > 1e-9) {
            return Ok(false);
        }
        let column: Vec<f64> = self.residual.iter().map(|x| x / norm).collect();
        agent.grow_latent(&column, self.config.new_dim_prior_var, self.config.max_dim)?;
        // Re-fit the grown model to the last observation before judging laws on it.
        agent.update(&self.last_obs)?;
        let probe = agent.clone();
        let obs = self.last_obs.clone();
        let fit_cfg = FluxConfig {
            max_iterations: self.config.fitness_iterations,
            ..*agent.config()
        };
        let fitness = |p: &Program| -> Option<f64> {
            let mut trial = probe.clone();
            trial.set_config(fit_cfg).ok()?;
            // Start the trial from the prior so the law has work to do.
            let start = trial.prior_mean().to_vec();
            trial.set_mean(&start).ok()?;
            let r = trial.update_with(&obs, &mut LawRule { program: p }).ok()?;
            Some(r.free_energy)
        };
        let outcome = hill_climb(
            self.law.clone(),
            &self.config.search,
            &mut self.rng,
            fitness,
        );
        if let Ok(p) = Program::compile(&outcome.best) {
            self.law = outcome.best;
            self.program = p;
        }
        self.history.iter_mut().for_each(|h| *h = 0.0);
        self.filled = 0;
        self.next = 0;
        self.residual.iter_mut().for_each(|r| *r = 0.0);
        self.expansions += 1;
        Ok(true)
    }
}
