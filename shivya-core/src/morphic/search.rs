//! A seeded stochastic hill-climb over expression trees.
//!
//! Genetic programming with a single individual: mutate, keep the mutant only when its
//! fitness (lower is better) strictly improves. Everything random comes from the seeded
//! [`Rng`], so a search is reproducible.

use super::ast::{BinOp, Expr, UnOp};
use super::vm::Program;
use crate::rng::Rng;

const UNOPS: [UnOp; 3] = [UnOp::Neg, UnOp::Abs, UnOp::Tanh];
const BINOPS: [BinOp; 6] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::Min,
    BinOp::Max,
];

/// Settings of a hill-climb.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// Mutants tried.
    pub iterations: usize,
    /// Largest tree kept (nodes).
    pub max_nodes: usize,
    /// Inputs a leaf may read (`x0 .. x{inputs-1}`).
    pub inputs: u8,
}

/// Result of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// The best tree found (the start if nothing beat it).
    pub best: Expr,
    /// Its fitness.
    pub fitness: f64,
    /// Mutants accepted.
    pub accepted: usize,
    /// Mutants evaluated.
    pub evaluated: usize,
}

/// A random tree of at most `depth` levels over `inputs` inputs.
pub fn random_tree(rng: &mut Rng, depth: usize, inputs: u8) -> Expr {
    if depth <= 1 || rng.chance(0.3) {
        return if inputs > 0 && rng.chance(0.6) {
            Expr::Input(rng.below(inputs as u64) as u8)
        } else {
            Expr::Const(rng.range_f64(-2.0, 2.0))
        };
    }
    if rng.chance(0.25) {
        let op = UNOPS[rng.below(UNOPS.len() as u64) as usize];
        Expr::Unary(op, Box::new(random_tree(rng, depth - 1, inputs)))
    } else {
        let op = BINOPS[rng.below(BINOPS.len() as u64) as usize];
        Expr::Binary(
            op,
            Box::new(random_tree(rng, depth - 1, inputs)),
            Box::new(random_tree(rng, depth - 1, inputs)),
        )
    }
}

/// The `k`-th node in pre-order, mutably.
fn node_mut<'a>(e: &'a mut Expr, k: &mut usize) -> Option<&'a mut Expr> {
    if *k == 0 {
        return Some(e);
    }
    *k -= 1;
    match e {
        Expr::Const(_) | Expr::Input(_) => None,
        Expr::Unary(_, a) => node_mut(a, k),
        Expr::Binary(_, a, b) => {
            if let Some(n) = node_mut(a, k) {
                return Some(n);
            }
            node_mut(b, k)
        }
    }
}

/// One random mutation of `e`: replace a subtree, nudge a constant, swap an operator,
/// or wrap a subtree in a new operation.
pub fn mutate(e: &Expr, rng: &mut Rng, inputs: u8) -> Expr {
    let mut out = e.clone();
    let mut k = rng.below(out.size() as u64) as usize;
    let Some(node) = node_mut(&mut out, &mut k) else {
        return out;
    };
    match rng.below(4) {
        0 => *node = random_tree(rng, 3, inputs),
        1 => match node {
            Expr::Const(c) => *c *= 1.0 + 0.2 * rng.normal(),
            Expr::Unary(op, _) => *op = UNOPS[rng.below(UNOPS.len() as u64) as usize],
            Expr::Binary(op, _, _) => *op = BINOPS[rng.below(BINOPS.len() as u64) as usize],
            Expr::Input(i) => *i = rng.below(inputs.max(1) as u64) as u8,
        },
        2 => {
            let inner = std::mem::replace(node, Expr::Const(0.0));
            *node = Expr::Binary(
                BinOp::Mul,
                Box::new(Expr::Const(1.0 + 0.2 * rng.normal())),
                Box::new(inner),
            );
        }
        _ => {
            let inner = std::mem::replace(node, Expr::Const(0.0));
            let op = BINOPS[rng.below(BINOPS.len() as u64) as usize];
            *node = Expr::Binary(op, Box::new(inner), Box::new(random_tree(rng, 2, inputs)));
        }
    }
    out
}

/// Hill-climbs from `start`. `fitness` scores a compiled program (lower is better;
/// `None` or a non-finite score rejects it). Trees that do not compile or exceed
/// `max_nodes` are skipped.
pub fn hill_climb<F>(
    start: Expr,
    cfg: &SearchConfig,
    rng: &mut Rng,
    mut fitness: F,
) -> SearchOutcome
where
    F: FnMut(&Program) -> Option<f64>,
{
    let score = |e: &Expr, fitness: &mut F| -> Option<f64> {
        let p = Program::compile(e).ok()?;
        fitness(&p).filter(|f| f.is_finite())
    };
    let mut best_fit = score(&start, &mut fitness).unwrap_or(f64::INFINITY);
    let mut best = start;
    let (mut accepted, mut evaluated) = (0, 1);
    for _ in 0..cfg.iterations {
        let cand = mutate(&best, rng, cfg.inputs);
        if cand.size() > cfg.max_nodes {
            continue;
        }
        evaluated += 1;
        if let Some(f) = score(&cand, &mut fitness) {
            if f < best_fit {
                best_fit = f;
                best = cand;
                accepted += 1;
            }
        }
    }
    SearchOutcome {
        best,
        fitness: best_fit,
        accepted,
        evaluated,
    }
}
