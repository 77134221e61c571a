//! L1 — flux: a Gaussian active-inference agent.
//!
//! The agent holds a Gaussian belief `q = N(μ_q, Σ_q)` over a latent state, a Gaussian
//! prior `N(μ_p, Σ_p)`, a linear generative map `g(μ) = G μ` from latent state to
//! observations with sensory noise `N(0, Σ_s)`, the last observation `s` and an active
//! state `a`. Its variational free energy is
//!
//! ```text
//! F = KL(q ‖ prior) + nll(s | g(μ_q))
//! KL  = ½ [ tr(Σ_p⁻¹ Σ_q) + (μ_q − μ_p)ᵀ Σ_p⁻¹ (μ_q − μ_p) − n + ln|Σ_p| − ln|Σ_q| ]
//! nll = ½ [ (s − G μ_q)ᵀ Σ_s⁻¹ (s − G μ_q) + ln|Σ_s| + m ln 2π ]
//! ```
//!
//! `update` descends `F` in `μ_q` until the gradient norm is below a tolerance. The step
//! is the gradient preconditioned by `Σ_q = (Σ_p⁻¹ + Gᵀ Σ_s⁻¹ G)⁻¹` (the Laplace
//! posterior covariance, which makes the step scale-free); it can be replaced by any
//! [`StepRule`], which is how L2 plugs evolved update laws in. The active state is the
//! change to the sensed input that would make it match the prediction:
//! `a = κ (G μ_q − s)`.
//!
//! Every matrix inversion goes plain → ridge (`1e-6` on the diagonal) → identity, so a
//! degenerate covariance never stops the agent; which path was taken is reported.
//! Observations with NaN or infinities are rejected and leave the agent untouched.

mod linalg;

pub use linalg::InversionPath;
use linalg::{invert_spd, mat_t_vec, mat_vec, quad};
use thiserror::Error;

/// Errors from the agent. The agent's state is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SubstrateError {
    /// A vector or matrix has the wrong number of entries.
    #[error("{what} has {got} entries, expected {expected}")]
    Dimension {
        /// Which input.
        what: &'static str,
        /// Entries required.
        expected: usize,
        /// Entries given.
        got: usize,
    },
    /// An input holds NaN or an infinity.
    #[error("{what}[{index}] is {value}; values must be finite")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// The first offending index.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A covariance is not symmetric.
    #[error("{what} is not symmetric at ({row}, {col})")]
    NotSymmetric {
        /// Which matrix.
        what: &'static str,
        /// Row of the first mismatch.
        row: usize,
        /// Column of the first mismatch.
        col: usize,
    },
    /// A configuration value is out of range.
    #[error("configuration {what} = {value} is out of range: {why}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: f64,
        /// The accepted range.
        why: &'static str,
    },
    /// A custom step rule failed; the update was abandoned.
    #[error("step rule failed: {0}")]
    StepRule(String),
    /// The latent dimension is already at its maximum.
    #[error("latent dimension {dim} is already at the maximum {max}")]
    DimensionLimit {
        /// Current dimension.
        dim: usize,
        /// Maximum allowed.
        max: usize,
    },
}

/// Tuning of the descent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FluxConfig {
    /// Step length on the preconditioned gradient, in `(0, 1]` (1 lands on the optimum
    /// of a linear-Gaussian model in one step; smaller values damp).
    pub learning_rate: f64,
    /// Stop when `‖∂F/∂μ_q‖₂` is at most this.
    pub tolerance: f64,
    /// Iteration cap per update; reaching it is reported, not an error.
    pub max_iterations: usize,
    /// Diagonal added when a plain inversion fails.
    pub ridge: f64,
    /// Gain `κ` of the active state.
    pub action_gain: f64,
}

impl Default for FluxConfig {
    fn default() -> Self {
        FluxConfig {
            learning_rate: 1.0,
            tolerance: 1e-4,
            max_iterations: 50,
            ridge: 1e-6,
            action_gain: 0.1,
        }
    }
}

/// The generative model an agent starts from. Matrices are row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianModel {
    /// Prior mean `μ_p` (length `n`).
    pub prior_mean: Vec<f64>,
    /// Prior covariance `Σ_p` (`n × n`).
    pub prior_cov: Vec<f64>,
    /// Generative map `G` (`m × n`).
    pub map: Vec<f64>,
    /// Sensory noise covariance `Σ_s` (`m × m`).
    pub sensory_cov: Vec<f64>,
}

fn diag(n: usize, v: f64) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = v;
    }
    m
}

impl GaussianModel {
    /// Zero prior mean, `prior_var · I` prior, `sensory_var · I` noise, and a map that
    /// reads latent coordinate `i` into observation `i` (for `i < min(n, m)`).
    pub fn isotropic(n: usize, m: usize, prior_var: f64, sensory_var: f64) -> Self {
        let mut map = vec![0.0; m * n];
        for i in 0..n.min(m) {
            map[i * n + i] = 1.0;
        }
        GaussianModel {
            prior_mean: vec![0.0; n],
            prior_cov: diag(n, prior_var),
            map,
            sensory_cov: diag(m, sensory_var),
        }
    }
}

/// What one `update` did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateReport {
    /// Descent iterations taken.
    pub iterations: usize,
    /// Gradient norm at exit.
    pub gradient_norm: f64,
    /// Whether the gradient norm met the tolerance.
    pub converged: bool,
    /// Free energy before the update (with the new observation).
    pub free_energy_before: f64,
    /// Free energy after.
    pub free_energy: f64,
}

/// One step of a descent: given the current mean, the raw gradient and the
/// preconditioned gradient, write the change to the mean into `delta`.
pub trait StepRule {
    /// Computes `delta`; an error abandons the update and leaves the agent unchanged.
    fn step(
        &mut self,
        mean: &[f64],
        gradient: &[f64],
        natural_gradient: &[f64],
        delta: &mut [f64],
    ) -> Result<(), SubstrateError>;
}

/// The default rule: `Δμ = −η Σ_q ∇F`.
#[derive(Debug, Clone, Copy)]
pub struct NaturalGradient {
    /// Step length `η`.
    pub learning_rate: f64,
}

impl StepRule for NaturalGradient {
    fn step(
        &mut self,
        _mean: &[f64],
        _gradient: &[f64],
        natural_gradient: &[f64],
        delta: &mut [f64],
    ) -> Result<(), SubstrateError> {
        for (d, g) in delta.iter_mut().zip(natural_gradient) {
            *d = -self.learning_rate * g;
        }
        Ok(())
    }
}

fn check_len(what: &'static str, v: &[f64], expected: usize) -> Result<(), SubstrateError> {
    if v.len() != expected {
        return Err(SubstrateError::Dimension {
            what,
            expected,
            got: v.len(),
        });
    }
    Ok(())
}

fn check_finite(what: &'static str, v: &[f64]) -> Result<(), SubstrateError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(SubstrateError::NonFinite {
            what,
            index,
            value: v[index],
        }),
        None => Ok(()),
    }
}

fn check_symmetric(what: &'static str, m: &[f64], n: usize) -> Result<(), SubstrateError> {
    for r in 0..n {
        for c in r + 1..n {
            if m[r * n + c] != m[c * n + r] {
                return Err(SubstrateError::NotSymmetric {
                    what,
                    row: r,
                    col: c,
                });
            }
        }
    }
    Ok(())
}

/// A Gaussian active-inference agent. See the module docs for the model.
#[derive(Debug, Clone)]
pub struct GibbsFluxAgent {
    n: usize,
    m: usize,
    config: FluxConfig,
    mu_q: Vec<f64>,
    sigma_q: Vec<f64>,
    logdet_q: f64,
    mu_p: Vec<f64>,
    sigma_p: Vec<f64>,
    prec_p: Vec<f64>,
    logdet_p: f64,
    g: Vec<f64>,
    sigma_s: Vec<f64>,
    prec_s: Vec<f64>,
    logdet_s: f64,
    s: Vec<f64>,
    a: Vec<f64>,
    prior_path: InversionPath,
    sensory_path: InversionPath,
    posterior_path: InversionPath,
    // Scratch, sized with the dimensions so updates allocate nothing.
    h: Vec<f64>,
    work_nn: Vec<f64>,
    work_mm: Vec<f64>,
    col: Vec<f64>,
    mu_try: Vec<f64>,
    grad: Vec<f64>,
    nat: Vec<f64>,
    delta: Vec<f64>,
    pred: Vec<f64>,
    err: Vec<f64>,
    tmp_m: Vec<f64>,
    tmp_n: Vec<f64>,
}

impl GibbsFluxAgent {
    /// An agent with belief equal to its prior and no observation yet (`s = G μ_p`).
    pub fn new(model: GaussianModel, config: FluxConfig) -> Result<Self, SubstrateError> {
        let n = model.prior_mean.len();
        if n == 0 {
            return Err(SubstrateError::Dimension {
                what: "prior_mean",
                expected: 1,
                got: 0,
            });
        }
        check_len("prior_cov", &model.prior_cov, n * n)?;
        if model.map.len() % n != 0 || model.map.is_empty() {
            return Err(SubstrateError::Dimension {
                what: "map",
                expected: n,
                got: model.map.len(),
            });
        }
        let m = model.map.len() / n;
        check_len("sensory_cov", &model.sensory_cov, m * m)?;
        for (what, v) in [
            ("prior_mean", &model.prior_mean),
            ("prior_cov", &model.prior_cov),
            ("map", &model.map),
            ("sensory_cov", &model.sensory_cov),
        ] {
            check_finite(what, v)?;
        }
        check_symmetric("prior_cov", &model.prior_cov, n)?;
        check_symmetric("sensory_cov", &model.sensory_cov, m)?;
        Self::check_config(&config)?;
        let mut agent = GibbsFluxAgent {
            n,
            m,
            config,
            mu_q: model.prior_mean.clone(),
            sigma_q: vec![0.0; n * n],
            logdet_q: 0.0,
            mu_p: model.prior_mean,
            sigma_p: model.prior_cov,
            prec_p: vec![0.0; n * n],
            logdet_p: 0.0,
            g: model.map,
            sigma_s: model.sensory_cov,
            prec_s: vec![0.0; m * m],
            logdet_s: 0.0,
            s: vec![0.0; m],
            a: vec![0.0; m],
            prior_path: InversionPath::Plain,
            sensory_path: InversionPath::Plain,
            posterior_path: InversionPath::Plain,
            h: vec![0.0; n * n],
            work_nn: vec![0.0; n * n],
            work_mm: vec![0.0; m * m],
            col: vec![0.0; n.max(m)],
            mu_try: vec![0.0; n],
            grad: vec![0.0; n],
            nat: vec![0.0; n],
            delta: vec![0.0; n],
            pred: vec![0.0; m],
            err: vec![0.0; m],
            tmp_m: vec![0.0; m],
            tmp_n: vec![0.0; n],
        };
        agent.refresh_sensory();
        agent.refresh_prior();
        mat_vec(&agent.g, m, n, &agent.mu_q, &mut agent.s);
        Ok(agent)
    }

    fn check_config(c: &FluxConfig) -> Result<(), SubstrateError> {
        let bad = |what, value, why| Err(SubstrateError::Config { what, value, why });
        if !(c.learning_rate > 0.0 && c.learning_rate <= 1.0) {
            return bad("learning_rate", c.learning_rate, "must be in (0, 1]");
        }
        if !(c.tolerance > 0.0 && c.tolerance.is_finite()) {
            return bad("tolerance", c.tolerance, "must be positive and finite");
        }
        if !(c.ridge > 0.0 && c.ridge.is_finite()) {
            return bad("ridge", c.ridge, "must be positive and finite");
        }
        if !c.action_gain.is_finite() {
            return bad("action_gain", c.action_gain, "must be finite");
        }
        Ok(())
    }

    fn refresh_sensory(&mut self) {
        let (logdet, path) = invert_spd(
            &self.sigma_s,
            self.m,
            self.config.ridge,
            &mut self.prec_s,
            &mut self.work_mm,
            &mut self.col,
        );
        self.logdet_s = logdet;
        self.sensory_path = path;
    }

    /// Recomputes the prior precision and the posterior covariance `Σ_q = H⁻¹`.
    fn refresh_prior(&mut self) {
        let (n, m) = (self.n, self.m);
        let (logdet, path) = invert_spd(
            &self.sigma_p,
            n,
            self.config.ridge,
            &mut self.prec_p,
            &mut self.work_nn,
            &mut self.col,
        );
        self.logdet_p = logdet;
        self.prior_path = path;
        // H = Σ_p⁻¹ + Gᵀ Σ_s⁻¹ G
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for r in 0..m {
                    let mut t = 0.0;
                    for c in 0..m {
                        t += self.prec_s[r * m + c] * self.g[c * n + j];
                    }
                    s += self.g[r * n + i] * t;
                }
                self.h[i * n + j] = self.prec_p[i * n + j] + s;
            }
        }
        let (logdet_h, path) = invert_spd(
            &self.h,
            n,
            self.config.ridge,
            &mut self.sigma_q,
            &mut self.work_nn,
            &mut self.col,
        );
        self.logdet_q = -logdet_h;
        self.posterior_path = path;
    }

    /// Free energy of mean `mu` against observation `s` (uses the scratch buffers).
    fn energy_at(&mut self, mu: &[f64], s: &[f64]) -> f64 {
        let (n, m) = (self.n, self.m);
        let mut tr = 0.0;
        for i in 0..n {
            for j in 0..n {
                tr += self.prec_p[i * n + j] * self.sigma_q[j * n + i];
            }
        }
        for i in 0..n {
            self.tmp_n[i] = mu[i] - self.mu_p[i];
        }
        let maha = quad(&self.prec_p, n, &self.tmp_n, &self.tmp_n);
        let kl = 0.5 * (tr + maha - n as f64 + self.logdet_p - self.logdet_q);
        mat_vec(&self.g, m, n, mu, &mut self.pred);
        for i in 0..m {
            self.err[i] = s[i] - self.pred[i];
        }
        let fit = quad(&self.prec_s, m, &self.err, &self.err);
        let nll = 0.5 * (fit + self.logdet_s + m as f64 * (std::f64::consts::TAU).ln());
        kl + nll
    }

    /// `∇F` at `mu` into `self.grad`, and `Σ_q ∇F` into `self.nat`; returns `‖∇F‖`.
    fn gradient_at(&mut self, mu: &[f64], s: &[f64]) -> f64 {
        let (n, m) = (self.n, self.m);
        for i in 0..n {
            self.tmp_n[i] = mu[i] - self.mu_p[i];
        }
        mat_vec(&self.prec_p, n, n, &self.tmp_n, &mut self.grad);
        mat_vec(&self.g, m, n, mu, &mut self.pred);
        for i in 0..m {
            self.err[i] = s[i] - self.pred[i];
        }
        mat_vec(&self.prec_s, m, m, &self.err, &mut self.tmp_m);
        mat_t_vec(&self.g, m, n, &self.tmp_m, &mut self.tmp_n);
        for i in 0..n {
            self.grad[i] -= self.tmp_n[i];
        }
        mat_vec(&self.sigma_q, n, n, &self.grad, &mut self.nat);
        self.grad.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    /// Takes observation `obs` and descends `F` with the default natural-gradient rule.
    pub fn update(&mut self, obs: &[f64]) -> Result<UpdateReport, SubstrateError> {
        let mut rule = NaturalGradient {
            learning_rate: self.config.learning_rate,
        };
        self.update_with(obs, &mut rule)
    }

    /// Takes observation `obs` and descends `F` with a custom step rule. On any error
    /// (bad observation, failing rule, non-finite step) nothing about the agent changes.
    pub fn update_with<R: StepRule + ?Sized>(
        &mut self,
        obs: &[f64],
        rule: &mut R,
    ) -> Result<UpdateReport, SubstrateError> {
        check_len("observation", obs, self.m)?;
        check_finite("observation", obs)?;
        let mut mu = std::mem::take(&mut self.mu_try);
        mu.copy_from_slice(&self.mu_q);
        let result = self.descend(obs, &mut mu, rule);
        if result.is_ok() {
            self.mu_q.copy_from_slice(&mu);
            self.s.copy_from_slice(obs);
            mat_vec(&self.g, self.m, self.n, &self.mu_q, &mut self.pred);
            for i in 0..self.m {
                self.a[i] = self.config.action_gain * (self.pred[i] - self.s[i]);
            }
        }
        self.mu_try = mu;
        result
    }

    fn descend<R: StepRule + ?Sized>(
        &mut self,
        obs: &[f64],
        mu: &mut [f64],
        rule: &mut R,
    ) -> Result<UpdateReport, SubstrateError> {
        let before = self.energy_at(mu, obs);
        let mut iterations = 0;
        let mut gnorm = self.gradient_at(mu, obs);
        while gnorm > self.config.tolerance && iterations < self.config.max_iterations {
            let mut delta = std::mem::take(&mut self.delta);
            let r = rule.step(mu, &self.grad, &self.nat, &mut delta);
            let finite = delta.iter().all(|d| d.is_finite());
            if r.is_ok() && finite {
                for (x, d) in mu.iter_mut().zip(&delta) {
                    *x += d;
                }
            }
            self.delta = delta;
            r?;
            if !finite || mu.iter().any(|x| !x.is_finite()) {
                return Err(SubstrateError::StepRule(
                    "the step produced a non-finite mean".into(),
                ));
            }
            iterations += 1;
            gnorm = self.gradient_at(mu, obs);
        }
        let after = self.energy_at(mu, obs);
        Ok(UpdateReport {
            iterations,
            gradient_norm: gnorm,
            converged: gnorm <= self.config.tolerance,
            free_energy_before: before,
            free_energy: after,
        })
    }

    /// Free energy of the current belief against the last observation.
    pub fn free_energy(&mut self) -> f64 {
        let mu = std::mem::take(&mut self.mu_q);
        let s = std::mem::take(&mut self.s);
        let f = self.energy_at(&mu, &s);
        self.mu_q = mu;
        self.s = s;
        f
    }

    /// Free energy the current belief would have against `obs` (state unchanged).
    pub fn free_energy_of(&mut self, obs: &[f64]) -> Result<f64, SubstrateError> {
        check_len("observation", obs, self.m)?;
        check_finite("observation", obs)?;
        let mu = std::mem::take(&mut self.mu_q);
        let f = self.energy_at(&mu, obs);
        self.mu_q = mu;
        Ok(f)
    }

    /// Makes the current posterior the next prior, widened by `process_noise · I`
    /// (a Kalman predict step with a random-walk latent state).
    pub fn absorb(&mut self, process_noise: f64) -> Result<(), SubstrateError> {
        if !(process_noise >= 0.0 && process_noise.is_finite()) {
            return Err(SubstrateError::Config {
                what: "process_noise",
                value: process_noise,
                why: "must be finite and non-negative",
            });
        }
        self.mu_p.copy_from_slice(&self.mu_q);
        self.sigma_p.copy_from_slice(&self.sigma_q);
        for i in 0..self.n {
            self.sigma_p[i * self.n + i] += process_noise;
        }
        self.refresh_prior();
        Ok(())
    }

    /// Replaces the belief mean (used by belief diffusion); rejects bad input unchanged.
    pub fn set_mean(&mut self, mean: &[f64]) -> Result<(), SubstrateError> {
        check_len("mean", mean, self.n)?;
        check_finite("mean", mean)?;
        self.mu_q.copy_from_slice(mean);
        Ok(())
    }

    /// Adds a latent dimension with prior `N(0, prior_var)` whose column of `G` is
    /// `column` (length `m`). Allocates; meant for the rare expansion events of L2.
    pub fn grow_latent(
        &mut self,
        column: &[f64],
        prior_var: f64,
        max_dim: usize,
    ) -> Result<(), SubstrateError> {
        if self.n >= max_dim {
            return Err(SubstrateError::DimensionLimit {
                dim: self.n,
                max: max_dim,
            });
        }
        check_len("column", column, self.m)?;
        check_finite("column", column)?;
        if !(prior_var > 0.0 && prior_var.is_finite()) {
            return Err(SubstrateError::Config {
                what: "prior_var",
                value: prior_var,
                why: "must be positive and finite",
            });
        }
        let (n, m, n1) = (self.n, self.m, self.n + 1);
        let mut sigma_p = vec![0.0; n1 * n1];
        for i in 0..n {
            sigma_p[i * n1..i * n1 + n].copy_from_slice(&self.sigma_p[i * n..i * n + n]);
        }
        sigma_p[n * n1 + n] = prior_var;
        self.sigma_p = sigma_p;
        let mut g = vec![0.0; m * n1];
        for r in 0..m {
            g[r * n1..r * n1 + n].copy_from_slice(&self.g[r * n..r * n + n]);
            g[r * n1 + n] = column[r];
        }
        self.g = g;
        self.mu_p.push(0.0);
        self.mu_q.push(0.0);
        self.n = n1;
        for v in [
            &mut self.sigma_q,
            &mut self.prec_p,
            &mut self.h,
            &mut self.work_nn,
        ] {
            v.resize(n1 * n1, 0.0);
        }
        for v in [
            &mut self.mu_try,
            &mut self.grad,
            &mut self.nat,
            &mut self.delta,
            &mut self.tmp_n,
        ] {
            v.resize(n1, 0.0);
        }
        self.col.resize(n1.max(m), 0.0);
        self.refresh_prior();
        Ok(())
    }

    /// Latent dimension `n`.
    pub fn dim(&self) -> usize {
        self.n
    }

    /// Observation dimension `m`.
    pub fn obs_dim(&self) -> usize {
        self.m
    }

    /// Belief mean `μ_q`.
    pub fn mean(&self) -> &[f64] {
        &self.mu_q
    }

    /// Belief covariance `Σ_q` (row-major `n × n`).
    pub fn covariance(&self) -> &[f64] {
        &self.sigma_q
    }

    /// Prior mean `μ_p`.
    pub fn prior_mean(&self) -> &[f64] {
        &self.mu_p
    }

    /// Last observation `s`.
    pub fn observation(&self) -> &[f64] {
        &self.s
    }

    /// Active state `a = κ (G μ_q − s)`.
    pub fn action(&self) -> &[f64] {
        &self.a
    }

    /// Prediction `G μ_q` written to `out` (length `m`).
    pub fn predict(&self, out: &mut [f64]) -> Result<(), SubstrateError> {
        check_len("prediction buffer", out, self.m)?;
        mat_vec(&self.g, self.m, self.n, &self.mu_q, out);
        Ok(())
    }

    /// How the prior covariance was last inverted.
    pub fn prior_inversion(&self) -> InversionPath {
        self.prior_path
    }

    /// How the posterior precision was last inverted.
    pub fn posterior_inversion(&self) -> InversionPath {
        self.posterior_path
    }

    /// How the sensory covariance was inverted.
    pub fn sensory_inversion(&self) -> InversionPath {
        self.sensory_path
    }

    /// Replaces the descent settings (validated; unchanged on error).
    pub fn set_config(&mut self, config: FluxConfig) -> Result<(), SubstrateError> {
        Self::check_config(&config)?;
        self.config = config;
        Ok(())
    }

    /// The descent settings.
    pub fn config(&self) -> &FluxConfig {
        &self.config
    }
}
