//! Values rendered as text for error messages ([`display_value`]).

use std::fmt::Write as _;

use tokio_postgres::types::Type;

use super::decode::{fixed, jsonb_text, numeric_to_string, IntWidth};
use super::types::{classify, Pg};
use super::{
    DATE_INFINITY, DATE_NEG_INFINITY, DISPLAY_MAX_CHARS, MICROS_PER_DAY, PG_EPOCH_DAYS,
    PG_EPOCH_MICROS, TS_INFINITY, TS_NEG_INFINITY,
};

/// Renders a value as text for error messages; never fails.
pub fn display_value(source_type: &Type, raw: Option<&[u8]>) -> String {
    let Some(raw) = raw else {
        return "NULL".into();
    };
    let invalid = || format!("<invalid {} value>", source_type.name());
    let Some(pg) = classify(source_type) else {
        return format!("<{} value>", source_type.name());
    };
    match pg {
        Pg::Bool => match raw {
            [0] => "false".into(),
            [_] => "true".into(),
            _ => invalid(),
        },
        Pg::Int2 | Pg::Int4 | Pg::Int8 => IntWidth::of(pg)
            .and_then(|w| w.read(raw).ok())
            .map_or_else(invalid, |v| v.to_string()),
        Pg::Float4 => {
            fixed::<4>(raw, "").map_or_else(|_| invalid(), |b| f32::from_be_bytes(b).to_string())
        }
        Pg::Float8 => {
            fixed::<8>(raw, "").map_or_else(|_| invalid(), |b| f64::from_be_bytes(b).to_string())
        }
        Pg::Numeric => numeric_to_string(raw).unwrap_or_else(invalid),
        Pg::Text | Pg::Json => display_text(&String::from_utf8_lossy(raw)),
        Pg::Jsonb => match jsonb_text(raw) {
            Ok(t) => display_text(&String::from_utf8_lossy(t)),
            Err(_) => invalid(),
        },
        Pg::Bytea => {
            let mut s = String::from("\\x");
            for b in raw.iter().take(DISPLAY_MAX_CHARS / 2) {
                let _ = write!(s, "{b:02x}");
            }
            if raw.len() > DISPLAY_MAX_CHARS / 2 {
                s.push('…');
            }
            s
        }
        Pg::Uuid => fixed::<16>(raw, "").map_or_else(|_| invalid(), |u| display_uuid(&u)),
        Pg::Date => {
            fixed::<4>(raw, "").map_or_else(|_| invalid(), |b| display_date(i32::from_be_bytes(b)))
        }
        Pg::Time => {
            fixed::<8>(raw, "").map_or_else(|_| invalid(), |b| display_time(i64::from_be_bytes(b)))
        }
        Pg::Timestamp | Pg::TimestampTz => fixed::<8>(raw, "").map_or_else(
            |_| invalid(),
            |b| display_timestamp(i64::from_be_bytes(b), pg == Pg::TimestampTz),
        ),
    }
}

pub(super) fn display_text(s: &str) -> String {
    match s.char_indices().nth(DISPLAY_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

fn display_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// (year, month, day) of a day count from 1970-01-01, proleptic Gregorian,
/// year 0 = 1 BC. Howard Hinnant's `civil_from_days`; done by hand because
/// chrono's range is narrower than PostgreSQL's.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats a date like PostgreSQL's ISO output, with " BC" for year <= 0.
fn format_ymd(days_since_1970: i64) -> (String, bool) {
    let (y, m, d) = civil_from_days(days_since_1970);
    let bc = y <= 0;
    let year = if bc { 1 - y } else { y };
    (format!("{year:04}-{m:02}-{d:02}"), bc)
}

pub(super) fn display_date(pg_days: i32) -> String {
    match pg_days {
        DATE_INFINITY => "infinity".into(),
        DATE_NEG_INFINITY => "-infinity".into(),
        _ => {
            let (s, bc) = format_ymd(pg_days as i64 + PG_EPOCH_DAYS as i64);
            if bc {
                format!("{s} BC")
            } else {
                s
            }
        }
    }
}

fn display_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

pub(super) fn display_timestamp(pg_micros: i64, tz: bool) -> String {
    match pg_micros {
        TS_INFINITY => return "infinity".into(),
        TS_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    // i128 so that the shift to 1970 cannot overflow at the range's ends.
    let micros = pg_micros as i128 + PG_EPOCH_MICROS as i128;
    let days = micros.div_euclid(MICROS_PER_DAY as i128) as i64;
    let tod = micros.rem_euclid(MICROS_PER_DAY as i128) as i64;
    let (date, bc) = format_ymd(days);
    let mut s = format!("{date} {}", display_time(tod));
    if tz {
        s.push_str("+00");
    }
    if bc {
        s.push_str(" BC");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_values() {
        assert_eq!(display_value(&Type::INT4, None), "NULL");
        assert_eq!(
            display_value(&Type::INT8, Some(&(-42i64).to_be_bytes())),
            "-42"
        );
        assert_eq!(
            display_value(&Type::TEXT, Some("héllo".as_bytes())),
            "héllo"
        );
        assert_eq!(
            display_value(&Type::JSONB, Some(b"\x01{\"a\": 1}")),
            "{\"a\": 1}"
        );
        let u: [u8; 16] = [
            0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44,
            0x00, 0x00,
        ];
        assert_eq!(
            display_value(&Type::UUID, Some(&u)),
            "550e8400-e29b-41d4-a716-446655440000"
        );
        assert_eq!(
            display_value(&Type::DATE, Some(&0i32.to_be_bytes())),
            "2000-01-01"
        );
        assert_eq!(
            display_value(&Type::DATE, Some(&(-730_485i32).to_be_bytes())),
            "0001-01-01 BC"
        );
        assert_eq!(
            display_value(&Type::DATE, Some(&(-730_120i32).to_be_bytes())),
            "0001-12-31 BC"
        );
        assert_eq!(
            display_value(&Type::TIMESTAMP, Some(&(-1i64).to_be_bytes())),
            "1999-12-31 23:59:59.999999"
        );
        assert_eq!(
            display_value(&Type::TIMESTAMPTZ, Some(&1_500_000i64.to_be_bytes())),
            "2000-01-01 00:00:01.5+00"
        );
        assert_eq!(
            display_value(&Type::TIME, Some(&3_723_000_000i64.to_be_bytes())),
            "01:02:03"
        );
        assert_eq!(
            display_value(&Type::INT4, Some(&[1, 2])),
            "<invalid int4 value>"
        );
        let long = "x".repeat(500);
        assert_eq!(
            display_value(&Type::TEXT, Some(long.as_bytes()))
                .chars()
                .count(),
            101
        );
    }
}
