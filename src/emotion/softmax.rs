//! The softmax that turns the scorer's seven logits into probabilities, written as plain `f32`
//! arithmetic on eight lanes (seven labels and a padding lane) so that the compiler turns every
//! step into two four-lane SSE2 operations.
//!
//! It used to call the C library's `expf` seven times (about 190 instructions and several table
//! cache lines, cold when a message arrives). [`exp_lanes`] replaces it: range reduction to
//! `2^k * e^r` and a polynomial in `r`, within one ulp of the exact result for every `f32` in
//! [-87.33, 0] (`exp_is_within_one_ulp_on_the_non_positive_inputs` checks a dense sample; an
//! exhaustive run over all 1.1e9 of them gave 0.98 ulp at worst). There is no `mul_add`: Rust
//! never contracts `a * b + c` into a fused multiply-add, so the results are the same bits on
//! every platform, with or without FMA hardware.

/// Seven labels and one padding lane: two SSE2 registers.
const LANES: usize = 8;

type Lanes = [f32; LANES];

/// Four copies of a constant: one SSE2 register's worth.
type Quad = [f32; 4];

const fn quad(value: f32) -> Quad {
    [value; 4]
}

/// The exponential's constants, each as four lanes, together in four cache lines, read through
/// [`exp_constants`]: as constants of their own, a cold call missed eleven lines instead of
/// four.
#[repr(C, align(64))]
struct ExpConstants {
    /// `log2(e)`: `x * log2_e` is the power of two the result lies near.
    log2_e: Quad,
    /// 1.5 * 2^23: adding it rounds a number of magnitude below 2^22 to an integer, which then
    /// sits in the low bits of the sum's mantissa, ready to become an exponent without a
    /// float-to-integer conversion.
    rounding_shift: Quad,
    /// ln 2 in two parts (Cody and Waite): the high part (exactly 0.693359375) has few enough
    /// bits that `k * ln2_high` is exact for every `k` in range, so `x - k * ln 2` keeps its
    /// low bits.
    ln2_high: Quad,
    ln2_low: Quad,
    /// ln of the smallest normal `f32` (2^-126): below it the result is set to zero, so the
    /// exponent built from `k` never leaves the normal range.
    min_normal_input: Quad,
    /// `e^r ≈ 1 + r + r² * P(r)` for |r| <= ln(2) / 2 (the Cephes `expf` coefficients, highest
    /// power first; its last, 0.50000001, is 0.5 in `f32`).
    polynomial: [Quad; 6],
    one: Quad,
    /// 127 << 23: the exponent bias in place.
    exponent_bias: [u32; 4],
}

/// [`EXP_CONSTANTS`]' address, read by [`exp_constants`].
static EXP_CONSTANTS_AT: &ExpConstants = &EXP_CONSTANTS;

/// [`EXP_CONSTANTS`], loaded from the table (see [`crate::constant_table`]).
#[inline(always)]
fn exp_constants() -> &'static ExpConstants {
    crate::constant_table::opaque(&EXP_CONSTANTS_AT)
}

static EXP_CONSTANTS: ExpConstants = ExpConstants {
    log2_e: quad(std::f32::consts::LOG2_E),
    rounding_shift: quad(12_582_912.0),
    ln2_high: quad(0.693_359_4),
    ln2_low: quad(-2.121_944_4e-4),
    min_normal_input: quad(MIN_NORMAL_INPUT),
    polynomial: [
        quad(1.987_569_1e-4),
        quad(1.398_199_9e-3),
        quad(8.333_452e-3),
        quad(4.166_579_6e-2),
        quad(1.666_666_5e-1),
        quad(0.5),
    ],
    one: quad(1.0),
    exponent_bias: [127 << 23; 4],
};

/// ln(2^-126), the smallest input with a normal result.
const MIN_NORMAL_INPUT: f32 = -87.336_55;

/// The softmax of `logits`, or `None` when one is NaN or +infinity or all are -infinity (the
/// caller's fallback: the scorer's weights are finite, so this does not happen in practice).
/// A logit of -infinity among finite ones gets zero.
/// (The scorer calls [`shares`] with its padding lane already in place.)
#[cfg(test)]
fn softmax(logits: [f32; 7]) -> Option<[f32; 7]> {
    // The padding lane is -infinity: it cannot be the maximum and its exponential is zero.
    let mut lanes = [f32::NEG_INFINITY; LANES];
    lanes[..7].copy_from_slice(&logits);
    let shares = shares(&lanes)?;
    let mut values = [0.0; 7];
    values.copy_from_slice(&shares[..7]);
    Some(values)
}

/// Each lane's share `e^(l - max)` / Σ `e^(l - max)`, `None` when the sum is not finite.
/// The caller's padding lane must not be a constant the compiler sees: it then splits the
/// lanes into groups of four, two and one, which costs a third more instructions. The scorer's
/// comes from its intercepts (see `Scorer::score`), so this is inlined there, and the lanes
/// stay in registers from the scan to the shares.
#[inline(always)]
pub(super) fn shares(lanes: &Lanes) -> Option<Lanes> {
    // A pairwise maximum and sum (not a left-to-right fold): see `pairwise_sum`.
    let top = pairwise_maximum(lanes);
    let mut shifted = [0.0f32; LANES];
    for (s, &l) in shifted.iter_mut().zip(lanes) {
        *s = l - top;
    }
    let exps = exp_lanes(&shifted);
    // At least 1 (the maximum's lane is e^0 = 1) unless a NaN came in: any NaN lane or
    // maximum makes the sum NaN.
    let total = pairwise_sum(&exps);
    if !total.is_finite() {
        return None;
    }
    let mut shares = [0.0f32; LANES];
    for (share, &e) in shares.iter_mut().zip(&exps) {
        *share = e / total;
    }
    Some(shares)
}

/// The sum of eight lanes, pairwise (lane `i` and `i + 4`, then the halves of that, then the
/// last two): each step is one vector operation, and the order, fixed here, fixes the result.
#[inline(always)]
pub(crate) fn pairwise_sum(lanes: &Lanes) -> f32 {
    pairwise(lanes, |a, b| a + b)
}

/// Eight lanes folded with `op` in [`pairwise_sum`]'s order.
#[inline(always)]
fn pairwise(lanes: &Lanes, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut four = [0.0f32; 4];
    for (i, folded) in four.iter_mut().enumerate() {
        *folded = op(lanes[i], lanes[i + 4]);
    }
    op(op(four[0], four[2]), op(four[1], four[3]))
}

/// `pairwise(lanes, greater)`. With SSE2 written out: left to the compiler, the maximum folded
/// lanes 2 and 3 of both halves twice (13 instructions where 9 do).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pairwise_maximum(lanes: &Lanes) -> f32 {
    use std::arch::x86_64::{
        _mm_cvtss_f32, _mm_loadu_ps, _mm_max_ps, _mm_max_ss, _mm_movehl_ps, _mm_shuffle_ps,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline; the loads read the eight lanes' 32 bytes.
    // `maxps` and `maxss` are `greater` lane by lane (`a > b ? a : b`, NaN or not).
    unsafe {
        let four = _mm_max_ps(
            _mm_loadu_ps(lanes.as_ptr()),
            _mm_loadu_ps(lanes.as_ptr().add(4)),
        );
        // Lanes 0 and 2, 1 and 3.
        let two = _mm_max_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_max_ss(two, _mm_shuffle_ps::<0b01_01_01_01>(two, two)))
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn pairwise_maximum(lanes: &Lanes) -> f32 {
    pairwise(lanes, greater)
}

/// The larger of `a` and `b`, as one `maxps` lane (unlike `f32::max`, NaN is not skipped; it
/// reaches the sum either way).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn greater(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `e^x` per lane for `x <= 0`: zero below [`MIN_NORMAL_INPUT`] (and for -infinity), NaN for
/// NaN. Positive inputs are outside its contract (the softmax subtracts the maximum first).
#[inline(always)]
fn exp_lanes(x: &Lanes) -> Lanes {
    let constants = exp_constants();
    let mut out = [0.0f32; LANES];
    // Four lanes at a time, each with the constants' four copies.
    for (out, x) in out.chunks_exact_mut(4).zip(x.chunks_exact(4)) {
        for lane in 0..4 {
            out[lane] = exp_lane(x[lane], constants, lane);
        }
    }
    out
}

#[inline(always)]
fn exp_lane(x: f32, c: &ExpConstants, lane: usize) -> f32 {
    // k = round(x / ln 2), as a float and in the low mantissa bits of `rounded`.
    let rounded = x * c.log2_e[lane] + c.rounding_shift[lane];
    let k = rounded - c.rounding_shift[lane];
    let r = x - k * c.ln2_high[lane] - k * c.ln2_low[lane];
    let p = c.polynomial.map(|coefficient| coefficient[lane]);
    let poly = ((((p[0] * r + p[1]) * r + p[2]) * r + p[3]) * r + p[4]) * r + p[5];
    let exp_r = poly * (r * r) + r + c.one[lane];
    // 2^k: k + 127 in the exponent field. Shifting `rounded`'s bits left by 23 keeps just k's
    // low bits; the constant above them shifts out.
    let two_to_k = f32::from_bits((rounded.to_bits() << 23).wrapping_add(c.exponent_bias[lane]));
    let value = exp_r * two_to_k;
    // Out of range (k's exponent would wrap) or -infinity: zero. NaN compares false and stays
    // NaN.
    if x < c.min_normal_input[lane] {
        0.0
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp_one(x: f32) -> f32 {
        exp_lanes(&[x; LANES])[0]
    }

    /// The distance from `value` to the exact `e^x`, in units of the last place of the
    /// correctly rounded result.
    fn ulp_error(x: f32, value: f32) -> f64 {
        let exact = f64::from(x).exp();
        let rounded = exact as f32;
        let ulp = f64::from(f32::from_bits(rounded.to_bits() + 1) - rounded);
        (f64::from(value) - exact).abs() / ulp
    }

    #[test]
    fn exp_is_within_one_ulp_on_the_non_positive_inputs() {
        let mut worst = (0.0, 0.0f32);
        // Every 1009th f32 from -0 down to the smallest normal result: 1.1 million inputs,
        // every binade and every k.
        let mut bits = (-0.0f32).to_bits();
        while f32::from_bits(bits) >= MIN_NORMAL_INPUT {
            let x = f32::from_bits(bits);
            let error = ulp_error(x, exp_one(x));
            if error > worst.0 {
                worst = (error, x);
            }
            bits += 1009;
        }
        assert!(worst.0 < 1.0, "{} ulp at {:e}", worst.0, worst.1);
    }

    #[test]
    fn the_vector_maximum_is_the_pairwise_fold() {
        // Every assignment of these to the eight lanes, bit for bit (zeros of both signs and
        // NaN are where the order of `greater` shows).
        let specials = [0.0, -0.0, 1.0, -1.0, f32::NAN, f32::NEG_INFINITY];
        let mut lanes = [0.0f32; LANES];
        for mut index in 0..specials.len().pow(LANES as u32) {
            for lane in lanes.iter_mut() {
                *lane = specials[index % specials.len()];
                index /= specials.len();
            }
            let folded = pairwise(&lanes, greater);
            let vector = pairwise_maximum(&lanes);
            assert!(
                folded.to_bits() == vector.to_bits() || (folded.is_nan() && vector.is_nan()),
                "{lanes:?}: {folded} against {vector}"
            );
        }
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp_one(0.0), 1.0);
        assert_eq!(exp_one(-0.0), 1.0);
        assert_eq!(exp_one(-1e-30), 1.0);
        assert!(ulp_error(-1.0, exp_one(-1.0)) < 1.0);
        assert!(exp_one(-87.33).is_normal());
        for x in [-87.34, -100.0, -1e30, f32::MIN, f32::NEG_INFINITY] {
            assert_eq!(exp_one(x).to_bits(), 0, "{x}");
        }
        assert!(exp_one(f32::NAN).is_nan());
    }

    fn assert_distribution(values: &[f32; 7]) {
        let sum: f32 = values.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "sum {sum}");
        assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn softmax_matches_the_exact_one() {
        let mut random = crate::test_random::XorShift(0x2545_f491_4f6c_dd1d);
        for round in 0..20_000 {
            let spread = [0.01, 1.0, 10.0, 100.0][round % 4];
            let logits: [f32; 7] =
                std::array::from_fn(|_| (random.below(2_000_001) as f32 / 1e6 - 1.0) * spread);
            let Some(values) = softmax(logits) else {
                panic!("{logits:?} gave no distribution");
            };
            assert_distribution(&values);
            // Exact from the same f32 differences (their rounding is the input's, not the
            // exponential's, error).
            let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps = logits.map(|l| f64::from(l - top).exp());
            let total: f64 = exps.iter().sum();
            for (value, e) in values.iter().zip(exps) {
                let exact = e / total;
                assert!(
                    (f64::from(*value) - exact).abs() <= 1e-6 * exact + 1e-37,
                    "{logits:?}: {value} against {exact}"
                );
            }
        }
    }

    #[test]
    fn equal_logits_share_equally_and_shift_does_not_matter() {
        let values = softmax([0.5; 7]).unwrap_or_default();
        assert!(values.iter().all(|&v| v == values[0]));
        assert_distribution(&values);
        let shifted = softmax([3.0, 1.0, -2.0, 0.0, 0.0, 0.0, 1.0]);
        let base = softmax([2.0, 0.0, -3.0, -1.0, -1.0, -1.0, 0.0]);
        assert_eq!(shifted, base);
    }

    #[test]
    fn extreme_and_non_finite_logits() {
        // A huge gap: the small lanes underflow to exactly zero.
        let values = softmax([1e30, 0.0, -1e30, 0.0, 0.0, 0.0, 0.0]).unwrap_or_default();
        assert_eq!(values, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let values = softmax([0.0, f32::NEG_INFINITY, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(values.map(|v| v[1]), Some(0.0));
        for bad in [f32::NAN, f32::INFINITY] {
            for lane in 0..7 {
                let mut logits = [0.25; 7];
                logits[lane] = bad;
                assert_eq!(softmax(logits), None, "{bad} in lane {lane}");
            }
        }
        assert_eq!(softmax([f32::NEG_INFINITY; 7]), None);
    }
}
