//! L2: compiler, VM, hill-climb and latent expansion.

use proptest::prelude::*;
use shivya_core::flux::{FluxConfig, GaussianModel, GibbsFluxAgent};
use shivya_core::morphic::*;
use shivya_core::rng::Rng;

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (-4.0f64..4.0).prop_map(Expr::Const),
        Just(Expr::Const(0.0)),
        (0u8..3).prop_map(Expr::Input),
    ];
    leaf.prop_recursive(7, 96, 2, |inner| {
        prop_oneof![
            (
                prop_oneof![Just(UnOp::Neg), Just(UnOp::Abs), Just(UnOp::Tanh)],
                inner.clone()
            )
                .prop_map(|(op, a)| Expr::Unary(op, Box::new(a))),
            (
                prop_oneof![
                    Just(BinOp::Add),
                    Just(BinOp::Sub),
                    Just(BinOp::Mul),
                    Just(BinOp::Div),
                    Just(BinOp::Min),
                    Just(BinOp::Max)
                ],
                inner.clone(),
                inner
            )
                .prop_map(|(op, a, b)| Expr::Binary(op, Box::new(a), Box::new(b))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_programs_agree_with_the_tree(e in arb_expr(), xs in proptest::array::uniform3(-3.0f64..3.0)) {
        let p = Program::compile(&e).unwrap();
        let vm = p.eval(&xs);
        let direct = e.eval(&xs);
        match (vm, direct) {
            (Ok(a), Ok(b)) => prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{a} vs {b} for {e}"),
            (Err(a), Err(b)) => prop_assert_eq!(a.kind(), b.kind()),
            (a, b) => prop_assert!(false, "vm {a:?} vs direct {b:?} for {e}"),
        }
    }
}

#[test]
fn an_infinite_loop_stops_at_exactly_500_cycles() {
    let p = Program::from_parts(vec![Instr::Jmp { target: 0 }], vec![]);
    assert_eq!(p.eval(&[]), Err(VmError::BudgetExhausted { cycles: 500 }));
    // A countdown loop that would need 3 × 1000 cycles.
    let p = Program::from_parts(
        vec![
            Instr::Const { dst: 0, k: 0 },
            Instr::Const { dst: 1, k: 1 },
            Instr::Bin {
                op: BinOp::Sub,
                dst: 0,
                a: 0,
                b: 1,
            },
            Instr::Jnz { cond: 0, target: 2 },
            Instr::Ret { src: 0 },
        ],
        vec![1000.0, 1.0],
    );
    assert_eq!(p.eval(&[]), Err(VmError::BudgetExhausted { cycles: 500 }));
    // The same loop from 10 finishes well inside the budget.
    let p10 = Program::from_parts(p.code().to_vec(), vec![10.0, 1.0]);
    assert_eq!(p10.eval(&[]), Ok(0.0));
    // Exactly 500 instructions ending in Ret is allowed; 501 is not.
    let mut code = vec![Instr::Load { dst: 0, input: 0 }; 499];
    code.push(Instr::Ret { src: 0 });
    assert_eq!(
        Program::from_parts(code.clone(), vec![]).eval(&[7.0]),
        Ok(7.0)
    );
    code.insert(0, Instr::Load { dst: 0, input: 0 });
    assert_eq!(
        Program::from_parts(code, vec![]).eval(&[7.0]),
        Err(VmError::BudgetExhausted { cycles: 500 })
    );
}

#[test]
fn faults_are_errors_not_panics() {
    let run = |code: Vec<Instr>, consts: Vec<f64>| Program::from_parts(code, consts).eval(&[1.0]);
    assert_eq!(
        run(vec![Instr::Ret { src: 16 }], vec![]),
        Err(VmError::BadRegister { pc: 0, reg: 16 })
    );
    assert_eq!(
        run(vec![Instr::Load { dst: 200, input: 0 }], vec![]),
        Err(VmError::BadRegister { pc: 0, reg: 200 })
    );
    assert_eq!(
        run(vec![Instr::Load { dst: 0, input: 5 }], vec![]),
        Err(VmError::BadInput {
            pc: 0,
            index: 5,
            available: 1
        })
    );
    assert_eq!(
        run(vec![Instr::Const { dst: 0, k: 3 }], vec![]),
        Err(VmError::BadConstant { pc: 0, index: 3 })
    );
    assert_eq!(
        run(vec![Instr::Load { dst: 0, input: 0 }], vec![]),
        Err(VmError::NoReturn { pc: 1 })
    );
    assert_eq!(
        run(vec![Instr::Jmp { target: 9 }], vec![]),
        Err(VmError::NoReturn { pc: 9 })
    );
    let div0 = Expr::Binary(
        BinOp::Div,
        Box::new(Expr::Input(0)),
        Box::new(Expr::Const(0.0)),
    );
    assert!(matches!(
        Program::compile(&div0).unwrap().eval(&[1.0]),
        Err(VmError::DivisionByZero { .. })
    ));
    assert!(matches!(
        div0.eval(&[1.0]),
        Err(VmError::DivisionByZero { .. })
    ));
}

#[test]
fn deep_trees_are_refused_at_compile_time() {
    // A complete binary tree of depth 18 needs 18 registers.
    fn full(d: usize) -> Expr {
        if d == 1 {
            Expr::Input(0)
        } else {
            Expr::Binary(BinOp::Add, Box::new(full(d - 1)), Box::new(full(d - 1)))
        }
    }
    assert!(matches!(
        Program::compile(&full(18)),
        Err(VmError::TooManyRegisters { needed: 18 })
    ));
    // Depth 9 (511 nodes) fits the registers but not the cycle budget.
    assert!(matches!(
        Program::compile(&full(9)),
        Err(VmError::ProgramTooLong { .. })
    ));
    assert!(Program::compile(&full(8)).is_ok());
}

#[test]
fn hill_climb_is_seeded_and_never_gets_worse() {
    // Fit f(x0) = 3·x0 + 1 on a grid, starting from the constant 0.
    let fitness = |p: &Program| -> Option<f64> {
        let mut err = 0.0;
        for i in -5..=5 {
            let x = i as f64 * 0.5;
            let y = p.eval(&[x, 0.0, 0.0]).ok()?;
            err += (y - (3.0 * x + 1.0)).powi(2);
        }
        Some(err)
    };
    let cfg = SearchConfig {
        iterations: 400,
        max_nodes: 15,
        inputs: 1,
    };
    let start = Expr::Const(0.0);
    let start_fit = fitness(&Program::compile(&start).unwrap()).unwrap();
    let a = hill_climb(start.clone(), &cfg, &mut Rng::new(42), fitness);
    let b = hill_climb(start, &cfg, &mut Rng::new(42), fitness);
    assert_eq!(a, b, "same seed, same search");
    assert!(
        a.fitness < start_fit * 0.1,
        "{} from {}",
        a.fitness,
        start_fit
    );
    assert!(a.best.size() <= 15);
}

#[test]
fn persistent_surprise_grows_the_latent_space_up_to_the_limit() {
    let mut agent = GibbsFluxAgent::new(
        GaussianModel::isotropic(2, 3, 4.0, 0.5),
        FluxConfig::default(),
    )
    .unwrap();
    let cfg = MorphicConfig {
        novelty_threshold: 6.0,
        max_dim: 3,
        ..MorphicConfig::default()
    };
    let mut ctl = MorphicController::new(cfg, 3).unwrap();
    let obs = [0.2, -0.1, 5.0];
    let mut f_before = None;
    let mut expanded_at = None;
    for t in 0..40 {
        let r = ctl.update(&mut agent, &obs).unwrap();
        agent.absorb(0.01).unwrap();
        if r.expanded {
            assert!(expanded_at.is_none(), "expanded twice despite max_dim = 3");
            expanded_at = Some(t);
        } else if expanded_at.is_none() {
            f_before = Some(r.update.free_energy);
        }
    }
    assert!(expanded_at.is_some(), "no expansion");
    assert_eq!(agent.dim(), 3);
    assert_eq!(ctl.expansions(), 1);
    let f_after = agent.free_energy();
    assert!(
        f_after < f_before.unwrap() - 1.0,
        "F before {f_before:?}, after {f_after}"
    );
    // With a threshold never reached, nothing grows.
    let mut quiet = GibbsFluxAgent::new(
        GaussianModel::isotropic(2, 3, 4.0, 0.5),
        FluxConfig::default(),
    )
    .unwrap();
    let mut ctl2 = MorphicController::new(
        MorphicConfig {
            novelty_threshold: 1e9,
            ..cfg
        },
        3,
    )
    .unwrap();
    for _ in 0..40 {
        assert!(!ctl2.update(&mut quiet, &obs).unwrap().expanded);
    }
    assert_eq!(quiet.dim(), 2);
}

#[test]
fn a_faulting_law_falls_back_to_the_default_rule() {
    let mut agent = GibbsFluxAgent::new(
        GaussianModel::isotropic(2, 2, 4.0, 0.5),
        FluxConfig::default(),
    )
    .unwrap();
    let bad = Program::from_parts(vec![Instr::Jmp { target: 0 }], vec![]);
    let err = agent
        .update_with(&[1.0, 1.0], &mut LawRule { program: &bad })
        .unwrap_err();
    assert!(err.to_string().contains("cycle budget"), "{err}");
    assert_eq!(
        agent.mean(),
        &[0.0, 0.0],
        "a failed update leaves the belief alone"
    );
}
