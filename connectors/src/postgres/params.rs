//! Values bound to and read from queries: raw binary fields, partition
//! bounds bound as the server's inferred type, min/max results.

use bytes::BytesMut;
use planner::partition::PartitionValue;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// Micros between the Unix epoch and PostgreSQL's 2000-01-01 epoch.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Any value in binary format, as raw bytes.
pub(super) struct RawValue<'a>(pub(super) Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(Some(raw)))
    }
    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Bind values a query owns (partition bounds, key arrays, bucket numbers).
pub(super) type OwnedParams = Vec<Box<dyn ToSql + Sync + Send>>;

/// A partition bound bound as whatever type the server inferred for it.
#[derive(Debug)]
pub(super) struct BoundParam {
    pub(super) value: PartitionValue,
}

impl ToSql for BoundParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let v = self.value.as_i64();
        match *ty {
            Type::INT2 => out.extend_from_slice(
                &(v.clamp(i16::MIN as i64, i16::MAX as i64) as i16).to_be_bytes(),
            ),
            Type::INT4 => out.extend_from_slice(
                &(v.clamp(i32::MIN as i64, i32::MAX as i64) as i32).to_be_bytes(),
            ),
            Type::INT8 => out.extend_from_slice(&v.to_be_bytes()),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                out.extend_from_slice(&v.saturating_sub(PG_EPOCH_OFFSET_MICROS).to_be_bytes())
            }
            Type::DATE => {
                // Rounded up: for date values, `d >= ceil(bound)` equals `d >= bound`.
                let days = (v - PG_EPOCH_OFFSET_MICROS).div_euclid(MICROS_PER_DAY)
                    + i64::from((v - PG_EPOCH_OFFSET_MICROS).rem_euclid(MICROS_PER_DAY) != 0);
                out.extend_from_slice(
                    &(days.clamp(i32::MIN as i64, i32::MAX as i64) as i32).to_be_bytes(),
                )
            }
            _ => return Err(format!("cannot bind a partition bound as {ty}").into()),
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::DATE
        )
    }
    tokio_postgres::types::to_sql_checked!();
}

/// A min/max result as a partition value.
pub(super) struct BoundValue(pub(super) Option<PartitionValue>);

impl<'a> FromSql<'a> for BoundValue {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let be = |n: usize| -> std::result::Result<i64, Box<dyn std::error::Error + Sync + Send>> {
            if raw.len() != n {
                return Err("bad length".into());
            }
            let mut b = [0u8; 8];
            b[8 - n..].copy_from_slice(raw);
            // Sign-extend narrower integers.
            let v = i64::from_be_bytes(b);
            Ok((v << (64 - 8 * n as u32)) >> (64 - 8 * n as u32))
        };
        let v = match *ty {
            Type::INT2 => PartitionValue::Int(be(2)?),
            Type::INT4 => PartitionValue::Int(be(4)?),
            Type::INT8 => PartitionValue::Int(be(8)?),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                PartitionValue::Micros(be(8)?.saturating_add(PG_EPOCH_OFFSET_MICROS))
            }
            Type::DATE => PartitionValue::Micros(be(4)? * MICROS_PER_DAY + PG_EPOCH_OFFSET_MICROS),
            _ => return Err(format!("cannot partition by a column of type {ty}").into()),
        };
        Ok(BoundValue(Some(v)))
    }
    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(BoundValue(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}
