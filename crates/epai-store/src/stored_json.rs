//! JSON columns passed through as text: from a request to the database, from the database to
//! a response.

use bytes::BytesMut;
use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_postgres::types::{FromSql, IsNull, Json, ToSql, Type, to_sql_checked};

/// A `json`/`jsonb` value as text, checked to be JSON but not parsed into a tree. Most paths
/// only forward it: building the tree of an insight's numbers (or of a batch's events) and
/// writing it out again cost more than the rest of the request. Read back, whitespace is
/// PostgreSQL's (`{"a": 1}`).
#[derive(Clone, Debug)]
pub struct StoredJson(Box<RawValue>);

impl From<Box<RawValue>> for StoredJson {
    fn from(raw: Box<RawValue>) -> Self {
        Self(raw)
    }
}

impl From<Value> for StoredJson {
    fn from(value: Value) -> Self {
        // Serialising a `Value` cannot fail: its keys are strings.
        Self(serde_json::value::to_raw_value(&value).expect("a JSON value serialises"))
    }
}

impl StoredJson {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The value as a tree, for the few readers that look inside.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for StoredJson {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl Serialize for StoredJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'a> FromSql<'a> for StoredJson {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let Json(value) = Json::<Box<RawValue>>::from_sql(ty, raw)?;
        Ok(Self(value))
    }

    fn accepts(ty: &Type) -> bool {
        <Json<Box<RawValue>> as FromSql>::accepts(ty)
    }
}

impl ToSql for StoredJson {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Json(&self.0).to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Json<Box<RawValue>> as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_is_forwarded_as_stored_and_still_readable_as_a_tree() {
        // jsonb's binary form: a version byte, then the text.
        let raw = b"\x01{\"big\": 12345678901234567890.5, \"s\": \"\\u00e9\"}";
        let stored = StoredJson::from_sql(&Type::JSONB, raw).unwrap();
        #[derive(Serialize)]
        struct Page {
            content: StoredJson,
        }
        assert_eq!(
            serde_json::to_string(&Page {
                content: stored.clone()
            })
            .unwrap(),
            "{\"content\":{\"big\": 12345678901234567890.5, \"s\": \"\\u00e9\"}}"
        );
        assert_eq!(stored.to_value()["s"], "é");
        assert!(StoredJson::from_sql(&Type::JSONB, b"\x01{\"unterminated\": ").is_err());
    }
}
