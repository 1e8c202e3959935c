//! Custom scalars of the API.
//!
//! GraphQL's `Int` is a signed 32-bit integer, so any 64-bit value (a bigint column, such
//! as an interface speed of 10 Gbit/s = 10,000,000,000) is a [`BigInt`]: serialised as a
//! decimal string, so that no client (JavaScript's numbers included) loses precision, and
//! accepted as a string or an integer within the signed 64-bit range.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// A signed 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BigInt(pub i64);

/// A signed 64-bit integer, written as a decimal string (`"10000000000"`) because
/// GraphQL's `Int` has only 32 bits; inputs may also be given as an integer literal.
#[Scalar(name = "BigInt")]
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        let out_of_range = || {
            InputValueError::custom(
                "expected an integer between -9223372036854775808 and 9223372036854775807 (as a string or a number)",
            )
        };
        match &value {
            Value::String(text) => text.trim().parse::<i64>().map(Self).map_err(|_| out_of_range()),
            Value::Number(number) => number.as_i64().map(Self).ok_or_else(out_of_range),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_) | Value::Number(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl From<i64> for BigInt {
    fn from(value: i64) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_ints_are_strings_out_and_strings_or_numbers_in() {
        assert_eq!(
            BigInt(10_000_000_000).to_value(),
            Value::String("10000000000".into())
        );
        assert_eq!(
            BigInt::parse(Value::String("10000000000".into())).ok(),
            Some(BigInt(10_000_000_000))
        );
        assert_eq!(
            BigInt::parse(Value::Number(10_000_000_000_i64.into())).ok(),
            Some(BigInt(10_000_000_000))
        );
        assert_eq!(
            BigInt::parse(Value::String(i64::MIN.to_string())).ok(),
            Some(BigInt(i64::MIN))
        );
        assert!(BigInt::parse(Value::String("9223372036854775808".into())).is_err());
        assert!(BigInt::parse(Value::Number(async_graphql::Number::from(u64::MAX))).is_err());
        assert!(BigInt::parse(Value::String("ten".into())).is_err());
        assert!(BigInt::parse(Value::Boolean(true)).is_err());
        assert!(
            BigInt::parse(Value::Number(
                async_graphql::Number::from_f64(1.5).expect("finite")
            ))
            .is_err()
        );
    }
}
