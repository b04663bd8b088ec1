//! The text forms of values: [`TextBuf`], the writers of decimals, dates,
//! times and UUIDs, and their lenient parsers.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use super::{MAX_TEXT_DAY, MICROS_PER_SECOND, MIN_TEXT_DAY, UNIX_EPOCH_DAYS_FROM_CE};

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

/// Room for the longest formatted value: a decimal of 38 digits with scale
/// -128 is 167 bytes with its sign.
const TEXT_BUF_LEN: usize = 176;

/// A stack buffer for formatted values, so encoding and decoding need no heap.
pub struct TextBuf {
    pub(super) len: usize,
    bytes: [u8; TEXT_BUF_LEN],
}

impl Default for TextBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl TextBuf {
    pub fn new() -> Self {
        TextBuf {
            len: 0,
            bytes: [0; TEXT_BUF_LEN],
        }
    }

    pub(super) fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    #[inline]
    pub(super) fn push_slice(&mut self, s: &[u8]) {
        self.bytes[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    /// `n` zero-padded to `width` digits.
    fn push_padded(&mut self, mut n: u32, width: usize) {
        for i in (0..width).rev() {
            self.bytes[self.len + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len += width;
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Only ASCII is ever written, so this cannot fail.
    #[inline]
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }

    pub(super) fn from_fmt(args: fmt::Arguments<'_>) -> Self {
        let mut buf = TextBuf::new();
        // Every caller formats a number, which is far shorter than the buffer.
        let _ = fmt::Write::write_fmt(&mut buf, args);
        buf
    }
}

impl fmt::Write for TextBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > TEXT_BUF_LEN {
            return Err(fmt::Error);
        }
        self.push_slice(s.as_bytes());
        Ok(())
    }
}

#[inline]
pub(super) fn write_decimal(buf: &mut TextBuf, v: i128, scale: i8) {
    let mut digits = [0u8; 40];
    let mut n = 0;
    let mut u = v.unsigned_abs();
    // 128-bit division is a library call: only while the value needs it.
    while u > u128::from(u64::MAX) {
        digits[digits.len() - 1 - n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
    }
    let mut u = u as u64;
    loop {
        digits[digits.len() - 1 - n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    let digits = &digits[digits.len() - n..];
    if v < 0 {
        buf.push(b'-');
    }
    if scale <= 0 {
        buf.push_slice(digits);
        if v != 0 {
            for _ in 0..scale.unsigned_abs() {
                buf.push(b'0');
            }
        }
    } else {
        let scale = scale as usize;
        if n <= scale {
            buf.push_slice(b"0.");
            for _ in n..scale {
                buf.push(b'0');
            }
            buf.push_slice(digits);
        } else {
            buf.push_slice(&digits[..n - scale]);
            buf.push(b'.');
            buf.push_slice(&digits[n - scale..]);
        }
    }
}

/// Writes `YYYY-MM-DD`; false if the year is outside 0000-9999.
pub(super) fn write_date(buf: &mut TextBuf, days: i64) -> bool {
    if !(MIN_TEXT_DAY..=MAX_TEXT_DAY).contains(&days) {
        return false;
    }
    let Some(date) = NaiveDate::from_num_days_from_ce_opt((days + UNIX_EPOCH_DAYS_FROM_CE) as i32)
    else {
        return false;
    };
    buf.push_padded(date.year() as u32, 4);
    buf.push(b'-');
    buf.push_padded(date.month(), 2);
    buf.push(b'-');
    buf.push_padded(date.day(), 2);
    true
}

/// Writes `HH:MM:SS.ffffff` for microseconds within a day.
pub(super) fn write_time(buf: &mut TextBuf, micros: i64) {
    let secs = (micros / MICROS_PER_SECOND) as u32;
    buf.push_padded(secs / 3600, 2);
    buf.push(b':');
    buf.push_padded(secs / 60 % 60, 2);
    buf.push(b':');
    buf.push_padded(secs % 60, 2);
    buf.push(b'.');
    buf.push_padded((micros % MICROS_PER_SECOND) as u32, 6);
}

#[inline]
pub(super) fn write_uuid(buf: &mut TextBuf, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            buf.push(b'-');
        }
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 0xf)]);
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
pub(super) enum DecimalError {
    Invalid,
    /// Non-zero digits beyond the scale, or more integer digits than
    /// precision - scale.
    OutOfRange,
}

fn pow10(n: i64) -> Option<i128> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= 38)
        .map(|n| 10i128.pow(n))
}

/// Parses `[+-]digits[.digits][e[+-]digits]` exactly into an integer at `scale`.
pub(super) fn parse_decimal(text: &[u8], precision: u8, scale: i8) -> Result<i128, DecimalError> {
    use DecimalError::*;
    let s = text.trim_ascii();
    let (negative, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match s.iter().position(|&c| c == b'e' || c == b'E') {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&c| c == b'.') {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, &[][..]),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.iter().all(u8::is_ascii_digit)
        || !frac_part.iter().all(u8::is_ascii_digit)
    {
        return Err(Invalid);
    }
    let exponent = match exponent {
        None => 0,
        Some(e) => {
            let (sign, digits) = match e.first() {
                Some(b'-') => (-1, &e[1..]),
                Some(b'+') => (1, &e[1..]),
                _ => (1, e),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Invalid);
            }
            // Saturating: any exponent this large is out of range anyway.
            sign * digits
                .iter()
                .fold(0i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(100_000))
        }
    };

    let value = if exponent == 0
        && int_part.len() + frac_part.len() <= 18
        && frac_part.len() as i64 <= i64::from(scale)
    {
        short_decimal(int_part, frac_part, precision, scale)?
    } else {
        long_decimal(int_part, frac_part, exponent, precision, scale)?
    };
    Ok(if negative { -value } else { value })
}

/// Digits (at most 18, no more fraction digits than `scale`) at `scale`:
/// every value SyncHub writes, and most others. u64 arithmetic, where
/// `long_decimal` does a 128-bit power and multiply per digit.
fn short_decimal(
    int_part: &[u8],
    frac_part: &[u8],
    precision: u8,
    scale: i8,
) -> Result<i128, DecimalError> {
    let digits = int_part
        .iter()
        .chain(frac_part)
        .fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0'));
    if digits == 0 {
        return Ok(0);
    }
    let value = pow10(i64::from(scale) - frac_part.len() as i64)
        .and_then(|p| i128::from(digits).checked_mul(p))
        .ok_or(DecimalError::OutOfRange)?;
    if value >= 10i128.pow(u32::from(precision.min(38))) {
        return Err(DecimalError::OutOfRange);
    }
    Ok(value)
}

/// Digits times 10^`exponent` at `scale`, any length.
fn long_decimal(
    int_part: &[u8],
    frac_part: &[u8],
    exponent: i64,
    precision: u8,
    scale: i8,
) -> Result<i128, DecimalError> {
    use DecimalError::*;
    // Zeros are held back until a non-zero digit follows, so leading and
    // trailing zeros (say "1.5000...0" from another tool) cannot overflow.
    let mut digits: i128 = 0;
    let mut pending_zeros: i64 = 0;
    for &c in int_part.iter().chain(frac_part) {
        let d = i128::from(c - b'0');
        if d == 0 {
            pending_zeros += 1;
            continue;
        }
        digits = if digits == 0 {
            d
        } else {
            pow10(pending_zeros + 1)
                .and_then(|p| digits.checked_mul(p))
                .and_then(|m| m.checked_add(d))
                .ok_or(OutOfRange)?
        };
        pending_zeros = 0;
    }
    if digits == 0 {
        return Ok(0);
    }
    // `digits` has no trailing zeros, so a negative shift means non-zero
    // digits beyond the scale.
    let shift = pending_zeros + exponent + i64::from(scale) - frac_part.len() as i64;
    let value = pow10(shift)
        .and_then(|p| digits.checked_mul(p))
        .ok_or(OutOfRange)?;
    if value >= 10i128.pow(u32::from(precision.min(38))) {
        return Err(OutOfRange);
    }
    Ok(value)
}

fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

pub(super) struct DateTimeText {
    /// Days since 1970-01-01.
    pub(super) days: i64,
    /// Microseconds since midnight; a day's worth after rounding 23:59:59.9999995.
    pub(super) time_micros: i64,
    /// East of UTC.
    pub(super) offset_secs: i64,
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS[.f{1,9}]][ ][Z|±HH[[:]MM]]]`.
pub(super) fn parse_datetime(text: &[u8]) -> Option<DateTimeText> {
    let s = text.trim_ascii();
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        number(&s[..4])? as i32,
        number(&s[5..7])?,
        number(&s[8..10])?,
    )?;
    let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
    let rest = &s[10..];
    let Some((&sep, rest)) = rest.split_first() else {
        return Some(DateTimeText {
            days,
            time_micros: 0,
            offset_secs: 0,
        });
    };
    if !matches!(sep, b' ' | b'T' | b't') {
        return None;
    }
    let (time_micros, rest) = parse_time_prefix(rest)?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let offset_secs = match rest {
        [] => 0,
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), body @ ..] => {
            let (h, m) = match body {
                [_, _] => (number(body)?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (number(&[*h1, *h2])?, number(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    Some(DateTimeText {
        days,
        time_micros,
        offset_secs,
    })
}

/// `HH:MM[:SS[.f{1,9}]]` at the start of `s`: microseconds since midnight
/// (rounded half up) and the rest of `s`.
pub(super) fn parse_time_prefix(s: &[u8]) -> Option<(i64, &[u8])> {
    if s.len() < 5 || s[2] != b':' {
        return None;
    }
    let hours = number(&s[..2])?;
    let minutes = number(&s[3..5])?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let mut rest = &s[5..];
    let mut seconds = 0;
    let mut micros = 0i64;
    if let Some(after) = rest.strip_prefix(b":") {
        seconds = number(after.get(..2)?)?;
        if seconds > 59 {
            return None;
        }
        rest = &after[2..];
        if let Some(after) = rest.strip_prefix(b".") {
            let n = after.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            for i in 0..6 {
                micros = micros * 10
                    + after
                        .get(i)
                        .filter(|_| i < n)
                        .map_or(0, |d| i64::from(d - b'0'));
            }
            if n > 6 && after[6] >= b'5' {
                micros += 1;
            }
            rest = &after[n..];
        }
    }
    let secs = i64::from((hours * 60 + minutes) * 60 + seconds);
    Some((secs * MICROS_PER_SECOND + micros, rest))
}

/// Hyphenated (8-4-4-4-12) or 32 hex digits, either case.
#[inline]
pub(super) fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let hyphenated = match s.len() {
        36 => true,
        32 => false,
        _ => return None,
    };
    if hyphenated && (s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-') {
        return None;
    }
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    let mut digits = s
        .iter()
        .enumerate()
        .filter(|&(i, _)| !(hyphenated && matches!(i, 8 | 13 | 18 | 23)));
    for byte in &mut out {
        let (_, &hi) = digits.next()?;
        let (_, &lo) = digits.next()?;
        *byte = hex(hi)? << 4 | hex(lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_decimals_agree() {
        // Every digit string of up to 18 digits built from these pieces, at
        // every split into integer and fraction, at several scales and
        // precisions: the fast way gives what the general way gives.
        let pieces = ["0", "1", "9", "10", "05", "999999999", "123456789012345678"];
        for a in pieces {
            for b in pieces {
                let digits = format!("{a}{b}");
                if digits.len() > 18 {
                    continue;
                }
                for split in 0..=digits.len() {
                    let (int_part, frac_part) = digits.as_bytes().split_at(split);
                    for scale in [0i8, 2, 4, 10, 18, 38] {
                        if frac_part.len() as i64 > i64::from(scale) {
                            continue;
                        }
                        for precision in [1u8, 5, 12, 18, 38] {
                            assert_eq!(
                                short_decimal(int_part, frac_part, precision, scale),
                                long_decimal(int_part, frac_part, 0, precision, scale),
                                "{digits} split at {split}, decimal({precision},{scale})"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decimal_formatting() {
        let fmt = |v: i128, scale: i8| {
            let mut buf = TextBuf::new();
            write_decimal(&mut buf, v, scale);
            buf.as_str().to_owned()
        };
        assert_eq!(fmt(-1250, 2), "-12.50");
        assert_eq!(fmt(5, 2), "0.05");
        assert_eq!(fmt(-5, 3), "-0.005");
        assert_eq!(fmt(0, 2), "0.00");
        assert_eq!(fmt(0, 0), "0");
        assert_eq!(fmt(12, 0), "12");
        assert_eq!(fmt(12, -2), "1200");
        assert_eq!(fmt(0, -2), "0");
        assert_eq!(
            fmt(i128::MIN, 38),
            "-1.70141183460469231731687303715884105728"
        );
        assert_eq!(fmt(-(10i128.pow(38) - 1), -128).len(), 1 + 38 + 128);
        // Either side of the switch from 128- to 64-bit digits.
        let max = i128::from(u64::MAX);
        assert_eq!(fmt(max, 0), "18446744073709551615");
        assert_eq!(fmt(-(max + 1), 2), "-184467440737095516.16");
        assert_eq!(fmt(10i128.pow(20), 1), "10000000000000000000.0");
    }

    #[test]
    fn text_day_bounds() {
        let days = |y, m, d| {
            i64::from(NaiveDate::from_ymd_opt(y, m, d).unwrap().num_days_from_ce())
                - UNIX_EPOCH_DAYS_FROM_CE
        };
        assert_eq!(days(0, 1, 1), MIN_TEXT_DAY);
        assert_eq!(days(9999, 12, 31), MAX_TEXT_DAY);
        assert_eq!(days(1970, 1, 1), 0);
    }
}
