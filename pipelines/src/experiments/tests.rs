//! Assignment and report statistics on known inputs. The expected figures were
//! computed independently with SciPy 1.x (`scipy.stats.norm`) from the
//! textbook formulas quoted beside each test.

use super::*;

fn counts(variant: &str, units: u64, trials: u64, successes: u64) -> Counts {
    Counts {
        variant: variant.into(),
        units,
        trials,
        successes,
    }
}

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b} (tolerance {tol})");
}

#[test]
fn same_unit_same_variant_and_experiments_shuffle_independently() {
    let split = [Variant::new("control", 1.0), Variant::new("treatment", 1.0)];
    for unit in ["rep:1", "rep:2", "lead:99", "account:7"] {
        let first = assign("nba-ranking", unit, &split).name.clone();
        for _ in 0..5 {
            assert_eq!(assign("nba-ranking", unit, &split).name, first);
        }
    }
    // Another experiment name must not reproduce the same assignment for all units.
    let differ = (0..200)
        .filter(|i| {
            let u = format!("u{i}");
            assign("a", &u, &split).name != assign("b", &u, &split).name
        })
        .count();
    assert!((60..140).contains(&differ), "{differ} of 200 differ");
}

#[test]
fn split_holds_within_tolerance_over_10000_units() {
    // 70/30: the binomial standard deviation of the 70% arm over 10,000 units
    // is sqrt(10000·0.7·0.3) ≈ 45.8; allow 4 sd (±183).
    let split = [Variant::new("control", 7.0), Variant::new("treatment", 3.0)];
    let control = (0..10_000)
        .filter(|i| assign("nba-ranking", &format!("rep:{i}"), &split).name == "control")
        .count() as i64;
    assert!(
        (control - 7000).abs() <= 183,
        "control got {control} of 10000"
    );
    // Three equal arms.
    let split3 = [
        Variant::new("a", 1.0),
        Variant::new("b", 1.0),
        Variant::new("c", 1.0),
    ];
    let mut n = [0i64; 3];
    for i in 0..10_000 {
        let v = assign("three", &format!("{i}"), &split3);
        n[split3.iter().position(|x| x.name == v.name).unwrap()] += 1;
    }
    for k in n {
        // sd = sqrt(10000·1/3·2/3) ≈ 47.1
        assert!((k - 3333).abs() <= 189, "{n:?}");
    }
}

#[test]
fn bad_splits_are_refused() {
    assert_eq!(validate(&[Variant::new("a", 1.0)]), Err(SplitError::TooFew));
    assert_eq!(
        validate(&[Variant::new("a", 1.0), Variant::new("b", 0.0)]),
        Err(SplitError::BadWeight("b".into()))
    );
    assert_eq!(
        validate(&[Variant::new("a", 1.0), Variant::new("a", 2.0)]),
        Err(SplitError::Duplicate("a".into()))
    );
    assert!(validate(&[Variant::new("a", 1.0), Variant::new("b", 2.0)]).is_ok());
}

#[test]
fn normal_functions_match_scipy() {
    // scipy.stats.norm.ppf(0.975), .ppf(0.8), .sf(1.0), .sf(3.5), .ppf(0.001)
    close(normal_quantile(0.975), 1.959963984540054, 1e-9);
    close(normal_quantile(0.8), 0.8416212335729143, 1e-9);
    close(normal_sf(1.0), 0.15865525393145707, 1e-12);
    close(normal_sf(3.5), 0.00023262907903552502, 1e-14);
    close(normal_quantile(0.001), -3.090232306167813, 1e-9);
}

#[test]
fn two_proportion_test_on_known_counts() {
    // Control 120/1000, treatment 150/1000.
    // diff = 0.03; unpooled se = sqrt(.12·.88/1000 + .15·.85/1000);
    // 95% CI = diff ± 1.95996·se = [7.6029e-05, 0.0599240];
    // pooled p = 0.135, z = 0.03 / sqrt(.135·.865·(2/1000)) = 1.963050;
    // p = 2·sf(|z|) = 0.0496404 (SciPy).
    let c = compare(
        &counts("control", 40, 1000, 120),
        &counts("treatment", 40, 1000, 150),
        0.95,
    );
    close(c.difference, 0.03, 1e-12);
    close(c.ci_low, 7.602882129778554e-05, 1e-9);
    close(c.ci_high, 0.05992397117870221, 1e-9);
    close(c.z, 1.963049807622355, 1e-9);
    close(c.p_value, 0.04964038686536878, 1e-9);
    assert!(c.significant);
    // n = (1.96·sqrt(2·.135·.865) + 0.8416·sqrt(.12·.88 + .15·.85))² / .03² → 2036
    assert_eq!(c.required_per_variant, Some(2036));

    // 30/200 vs 22/180: not significant. SciPy: z = -0.786687, p = 0.431465,
    // CI = [-0.0966147, 0.0410592].
    let c = compare(&counts("a", 50, 200, 30), &counts("b", 50, 180, 22), 0.95);
    close(c.difference, -0.027777777777777776, 1e-12);
    close(c.ci_low, -0.09661471384541234, 1e-9);
    close(c.ci_high, 0.04105915828985679, 1e-9);
    close(c.z, -0.7866869651084241, 1e-9);
    close(c.p_value, 0.4314651364340004, 1e-9);
    assert!(!c.significant);
}

#[test]
fn report_warns_about_thin_samples() {
    let r = report(
        "nba-ranking",
        &[counts("control", 3, 40, 4), counts("treatment", 3, 38, 9)],
        &ReportOptions::default(),
    );
    close(r.variants[0].rate, 0.1, 1e-12);
    close(r.variants[1].rate, 9.0 / 38.0, 1e-12);
    assert_eq!(r.comparisons.len(), 1);
    assert!(
        r.warnings.iter().any(|w| w.contains("3 units")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("normal approximation"))
    );
    assert!(r.warnings.iter().any(|w| w.contains("80% power")));

    let big = report(
        "x",
        &[
            counts("control", 500, 5000, 600),
            counts("treatment", 500, 5000, 750),
        ],
        &ReportOptions::default(),
    );
    assert!(big.warnings.is_empty(), "{:?}", big.warnings);
    assert!(big.comparisons[0].significant);
}
