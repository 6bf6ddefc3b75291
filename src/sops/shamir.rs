//! Shamir secret sharing over GF(2^8), compatible with sops' key groups.
//!
//! Design note: sops splits the 32-byte data key with HashiCorp Vault's
//! scheme: field GF(2^8) with the AES polynomial 0x11B, each secret byte
//! shared with its own random polynomial of degree `threshold - 1`, and a
//! share laid out as the y-values followed by one byte x (sops-format.md
//! §5.4). Combining reads x from each share, so any x layout interoperates;
//! we use x = group index + 1. Field arithmetic avoids secret-dependent
//! table lookups and branches.

use super::error::SopsError;
use crate::secret::{ExposeSecret, SecretBytes};

/// Multiplication in GF(2^8) mod x^8+x^4+x^3+x+1, branch-free in the operands.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0u8;
    for _ in 0..8 {
        r ^= a & (0u8.wrapping_sub(b & 1));
        let hi = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & hi);
        b >>= 1;
    }
    r
}

/// Multiplicative inverse (a^254); 0 maps to 0, callers never divide by 0.
fn inv(a: u8) -> u8 {
    let mut r = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// Splits `secret` into `parts` shares, any `threshold` of which recover it.
pub fn split(
    secret: &SecretBytes,
    parts: usize,
    threshold: usize,
) -> Result<Vec<SecretBytes>, SopsError> {
    if threshold < 2 || threshold > parts || parts > 255 {
        return Err(SopsError::BadKeyGroups(format!(
            "shamir threshold {threshold} is invalid for {parts} key groups (need 2 <= threshold <= groups <= 255)"
        )));
    }
    let s = secret.expose_secret();
    let mut shares: Vec<Vec<u8>> = (0..parts)
        .map(|_| Vec::with_capacity(s.len() + 1))
        .collect();
    for &byte in s {
        // Coefficients 1..threshold-1 are random; coefficient 0 is the secret.
        let coeffs = super::cipher::random_bytes(threshold - 1)?;
        for (i, share) in shares.iter_mut().enumerate() {
            let x = (i + 1) as u8;
            // Horner: ((c_{t-1} x + c_{t-2}) x + ...) x + secret
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = mul(y, x) ^ c;
            }
            y = mul(y, x) ^ byte;
            share.push(y);
        }
        drop(zeroize::Zeroizing::new(coeffs));
    }
    for (i, share) in shares.iter_mut().enumerate() {
        share.push((i + 1) as u8);
    }
    Ok(shares.into_iter().map(SecretBytes::new).collect())
}

/// Recovers the secret from shares (each y-values + x byte).
pub fn combine(shares: &[SecretBytes]) -> Result<SecretBytes, SopsError> {
    let bad = |m: &str| SopsError::BadKeyGroups(format!("cannot combine key shares: {m}"));
    let first = shares.first().ok_or_else(|| bad("no shares"))?;
    let len = first.len();
    if len < 2 || shares.iter().any(|s| s.len() != len) {
        return Err(bad("shares have different or too short lengths"));
    }
    let xs: Vec<u8> = shares.iter().map(|s| s.expose_secret()[len - 1]).collect();
    for (i, a) in xs.iter().enumerate() {
        if *a == 0 || xs[i + 1..].contains(a) {
            return Err(bad("duplicate or zero share index"));
        }
    }
    let mut out = vec![0u8; len - 1];
    for (i, share) in shares.iter().enumerate() {
        // Lagrange basis at x = 0: prod_{j != i} x_j / (x_i ^ x_j).
        let mut basis = 1u8;
        for (j, &xj) in xs.iter().enumerate() {
            if i != j {
                basis = mul(basis, mul(xj, inv(xs[i] ^ xj)));
            }
        }
        for (o, &y) in out.iter_mut().zip(share.expose_secret()) {
            *o ^= mul(y, basis);
        }
    }
    Ok(SecretBytes::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_inverse_is_correct() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
        }
        assert_eq!(mul(0x57, 0x83), 0xc1); // FIPS-197 example
    }

    #[test]
    fn documented_one_byte_example() {
        // secret 0x42, coefficient 0x07: shares 0x45, 0x4c, 0x4b.
        let s = |y: u8, x: u8| SecretBytes::new(vec![y, x]);
        assert_eq!(
            combine(&[s(0x45, 1), s(0x4c, 2)]).unwrap().expose_secret(),
            &[0x42]
        );
        assert_eq!(
            combine(&[s(0x4c, 2), s(0x4b, 3)]).unwrap().expose_secret(),
            &[0x42]
        );
    }

    #[test]
    fn any_quorum_recovers() {
        let secret = SecretBytes::new((0..32).map(|i| i * 7 + 3).collect());
        let shares = split(&secret, 5, 3).unwrap();
        assert!(shares.iter().all(|s| s.len() == 33));
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let q = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    assert_eq!(combine(&q).unwrap(), secret);
                }
            }
        }
        // Below the threshold the result is (overwhelmingly) not the secret.
        assert_ne!(combine(&shares[..2]).unwrap(), secret);
        assert!(split(&secret, 2, 1).is_err());
        assert!(split(&secret, 2, 3).is_err());
    }
}
