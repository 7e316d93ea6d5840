//! Kubernetes quantities (`500m`, `1.5Gi`, `1e3`) in one canonical spelling, so that a manifest's
//! `cpu: .5` and the server's `500m` compare equal.
//!
//! The value is exact: a sign, an integer mantissa, a power of ten and a power of 1024. Like the
//! API server, non-zero values are rounded up (away from zero) to the nano, and the spelling is
//! the largest suffix that leaves an integer mantissa: binary suffixes (`Ki` … `Ei`) when the
//! quantity was written with one and is an integer of at least 1024, decimal SI suffixes
//! (`n`, `u`, `m`, none, `k` … `E`) otherwise. Exponent notation (`1e3`) is spelled with the
//! decimal suffix of the same value (`1k`): the server keeps `1e3` as written, so both sides of a
//! comparison are spelled alike only if both are canonicalized here, which normalization does.
//! What cannot be parsed, or does not fit, is left as it is.

/// The canonical spelling of a quantity, or `None` when `text` is not one this module can
/// spell with certainty.
pub fn canonical(text: &str) -> Option<String> {
    let quantity = parse(text.trim())?;
    Some(quantity.spell())
}

#[derive(Debug, PartialEq, Eq)]
struct Quantity {
    negative: bool,
    /// The value is `mantissa × 10^exponent`, exactly.
    mantissa: u128,
    exponent: i32,
    /// Written with a binary suffix.
    binary: bool,
}

const DECIMAL: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

const BINARY: [(&str, u32); 6] = [
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];

/// Mantissas are kept below this, so that every step stays exact in a `u128`.
const LIMIT: u128 = 10u128.pow(30);

fn parse(text: &str) -> Option<Quantity> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 28 {
        return None;
    }
    let mut mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut exponent = -i32::try_from(fraction.len()).ok()?;
    let mut binary = false;
    if let Some((_, power)) = BINARY.iter().find(|(s, _)| *s == suffix) {
        binary = true;
        for _ in 0..*power {
            mantissa = mantissa.checked_mul(1024)?;
        }
    } else if let Some((_, power)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
        exponent += power;
    } else if let Some(power) = suffix.strip_prefix(['e', 'E']) {
        let power: i32 = power.parse().ok()?;
        if power.abs() > 30 {
            return None;
        }
        exponent += power;
    } else {
        return None;
    }
    let mut quantity = Quantity {
        negative: negative && mantissa != 0,
        mantissa,
        exponent,
        binary,
    };
    quantity.round_to_nano()?;
    quantity.fold_tens();
    (quantity.mantissa < LIMIT && quantity.exponent <= 30).then_some(quantity)
}

impl Quantity {
    /// Rounds a non-zero value up, away from zero, to a multiple of 10^-9.
    fn round_to_nano(&mut self) -> Option<()> {
        while self.exponent < -9 {
            let (quotient, remainder) = (self.mantissa / 10, self.mantissa % 10);
            self.mantissa = quotient + u128::from(remainder != 0);
            self.exponent += 1;
        }
        Some(())
    }

    /// Moves trailing zeros of the mantissa into the exponent.
    fn fold_tens(&mut self) {
        while self.mantissa != 0 && self.mantissa.is_multiple_of(10) {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        if self.mantissa == 0 {
            self.exponent = 0;
        }
    }

    /// The integer value, when it is one and fits.
    fn integer(&self) -> Option<u128> {
        if self.exponent < 0 {
            return None;
        }
        let mut value = self.mantissa;
        for _ in 0..self.exponent {
            value = value.checked_mul(10)?;
        }
        Some(value)
    }

    fn spell(&self) -> String {
        if self.mantissa == 0 {
            return "0".into();
        }
        let sign = if self.negative { "-" } else { "" };
        if self.binary
            && let Some(value) = self.integer().filter(|v| *v >= 1024)
        {
            let mut value = value;
            let mut power = 0;
            while value.is_multiple_of(1024) && power < 6 {
                value /= 1024;
                power += 1;
            }
            let suffix = match power {
                0 => "",
                p => BINARY[p - 1].0,
            };
            return format!("{sign}{value}{suffix}");
        }
        // The largest multiple of three at or below the exponent: the mantissa grows to match.
        let target = self.exponent.div_euclid(3) * 3;
        let mut mantissa = self.mantissa;
        for _ in target..self.exponent {
            mantissa *= 10;
        }
        match DECIMAL.iter().find(|(_, power)| *power == target) {
            Some((suffix, _)) => format!("{sign}{mantissa}{suffix}"),
            None => format!("{sign}{mantissa}e{target}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_quantities_as_the_api_server_does() {
        for (written, canonical_form) in [
            ("0.5", "500m"),
            (".5", "500m"),
            ("500m", "500m"),
            ("1000m", "1"),
            ("1", "1"),
            ("1.0", "1"),
            ("1.5", "1500m"),
            ("2.", "2"),
            ("100", "100"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1e3", "1k"),
            ("1E3", "1k"),
            ("12e6", "12M"),
            ("5e-3", "5m"),
            ("1.5Gi", "1536Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1024", "1024"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("1G", "1G"),
            ("1000M", "1G"),
            ("128974848", "128974848"),
            ("129e6", "129M"),
            ("0", "0"),
            ("0.0", "0"),
            ("0Gi", "0"),
            ("-1.5", "-1500m"),
            ("+2k", "2k"),
            ("100u", "100u"),
            ("0.1n", "1n"),
            ("1.0000000001", "1000000001n"),
        ] {
            assert_eq!(
                canonical(written).as_deref(),
                Some(canonical_form),
                "{written}"
            );
        }
    }

    #[test]
    fn leaves_what_is_not_a_quantity() {
        for text in ["", "abc", "1.2.3", "1Zi", "1e", "1e999", ".", "1 Gi", "--1"] {
            assert_eq!(canonical(text), None, "{text:?}");
        }
    }

    #[test]
    fn equal_quantities_written_alike_have_one_spelling() {
        for group in [
            ["0.5", "500m", "5e-1"],
            ["1", "1000m", "1e0"],
            ["1k", "1e3", "1000"],
            ["1Mi", "1024Ki", "0.0009765625Gi"],
        ] {
            let spelled: Vec<_> = group.iter().map(|q| canonical(q).unwrap()).collect();
            assert!(
                spelled.iter().all(|s| s == &spelled[0]),
                "{group:?}: {spelled:?}"
            );
        }
        // As on the server, a binary spelling stays binary and a decimal one decimal.
        assert_eq!(canonical("1048576").as_deref(), Some("1048576"));
    }
}
