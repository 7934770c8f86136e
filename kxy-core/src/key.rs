//! The identity of a counter.
//!
//! A counter is named by four identifiers: system code, database name, table
//! name and field name. Stores keep one value per counter under a single string
//! key, so the four parts must map to that string *injectively*: the Python
//! service this replaces joined raw parts with `:`, so `("a:b", "c")` and
//! `("a", "b:c")` landed on the same key and shared IDs. Here each part is
//! validated against a character set that excludes the separator, which makes
//! the joined name unambiguous while keeping the seed's readable layout
//! (`system:db:table:field`), so existing Redis data stays addressable.

use std::fmt;

/// Longest identifier accepted, in bytes (all allowed characters are ASCII).
///
/// 128 covers every database we scan (MySQL allows 64, PostgreSQL 63, Oracle
/// 128) with room for a PostgreSQL `schema.table` pair.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// The characters an identifier may contain, as shown in error messages.
pub const ALLOWED_CHARACTERS: &str = "A-Z a-z 0-9 _ - . $";

/// Joins the four parts of a storage name. Never allowed inside a part.
const SEPARATOR: char = ':';

/// Which of a counter's four identifiers a value is; names the request field
/// in errors so callers know exactly what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPart {
    SystemCode,
    DbName,
    TableName,
    FieldName,
}

impl KeyPart {
    /// The request field that carries this part.
    pub fn field_name(self) -> &'static str {
        match self {
            KeyPart::SystemCode => "system_code",
            KeyPart::DbName => "db_name",
            KeyPart::TableName => "table_name",
            KeyPart::FieldName => "field_name",
        }
    }
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field_name())
    }
}

/// Why a value is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("{part} must not be empty")]
    Empty { part: KeyPart },
    #[error("{part} is {len} characters long; at most {MAX_IDENTIFIER_LEN} are allowed")]
    TooLong { part: KeyPart, len: usize },
    #[error(
        "{part} contains {found:?} at position {position}; allowed characters are {ALLOWED_CHARACTERS}"
    )]
    InvalidCharacter {
        part: KeyPart,
        found: char,
        position: usize,
    },
    #[error("{name:?} is not a counter name: expected system:db:table:field")]
    MalformedStorageName { name: String },
}

impl IdentifierError {
    /// The request field the error is about, if it is about one.
    pub fn part(&self) -> Option<KeyPart> {
        match self {
            IdentifierError::Empty { part }
            | IdentifierError::TooLong { part, .. }
            | IdentifierError::InvalidCharacter { part, .. } => Some(*part),
            IdentifierError::MalformedStorageName { .. } => None,
        }
    }
}

/// One validated part of a counter's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    /// Validates `value` as the given part of a counter key.
    pub fn new(part: KeyPart, value: &str) -> Result<Self, IdentifierError> {
        if value.is_empty() {
            return Err(IdentifierError::Empty { part });
        }
        if let Some((position, found)) = value.chars().enumerate().find(|(_, c)| !is_allowed(*c)) {
            return Err(IdentifierError::InvalidCharacter {
                part,
                found,
                position,
            });
        }
        // Checked after the characters so the length is in characters == bytes.
        if value.len() > MAX_IDENTIFIER_LEN {
            return Err(IdentifierError::TooLong {
                part,
                len: value.len(),
            });
        }
        Ok(Identifier(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$')
}

/// The validated identity of one counter: (system, database, table, field).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentKey {
    system_code: Identifier,
    db_name: Identifier,
    table_name: Identifier,
    field_name: Identifier,
}

impl SegmentKey {
    /// Validates all four parts; the first invalid one is reported.
    pub fn new(
        system_code: &str,
        db_name: &str,
        table_name: &str,
        field_name: &str,
    ) -> Result<Self, IdentifierError> {
        Ok(SegmentKey {
            system_code: Identifier::new(KeyPart::SystemCode, system_code)?,
            db_name: Identifier::new(KeyPart::DbName, db_name)?,
            table_name: Identifier::new(KeyPart::TableName, table_name)?,
            field_name: Identifier::new(KeyPart::FieldName, field_name)?,
        })
    }

    /// The name stores file this counter under: `system:db:table:field`.
    ///
    /// Injective because no part can contain `:` (see the module docs).
    pub fn storage_name(&self) -> String {
        format!(
            "{}{SEPARATOR}{}{SEPARATOR}{}{SEPARATOR}{}",
            self.system_code, self.db_name, self.table_name, self.field_name
        )
    }

    /// Reads back a name produced by [`SegmentKey::storage_name`].
    pub fn from_storage_name(name: &str) -> Result<Self, IdentifierError> {
        let malformed = || IdentifierError::MalformedStorageName {
            name: name.to_owned(),
        };
        let mut parts = name.split(SEPARATOR);
        let (Some(system), Some(db), Some(table), Some(field), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        SegmentKey::new(system, db, table, field)
    }

    pub fn system_code(&self) -> &str {
        self.system_code.as_str()
    }
    pub fn db_name(&self) -> &str {
        self.db_name.as_str()
    }
    pub fn table_name(&self) -> &str {
        self.table_name.as_str()
    }
    pub fn field_name(&self) -> &str {
        self.field_name.as_str()
    }
}

impl fmt::Display for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.storage_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_names() {
        let key = SegmentKey::new("crm", "crm_prod", "public.orders", "order_id").unwrap();
        assert_eq!(key.storage_name(), "crm:crm_prod:public.orders:order_id");
        assert_eq!(key.table_name(), "public.orders");
    }

    #[test]
    fn the_seed_collision_is_impossible() {
        // ("a:b", "c") and ("a", "b:c") joined to the same key in the seed.
        let err = SegmentKey::new("a:b", "c", "t", "f").unwrap_err();
        assert_eq!(
            err,
            IdentifierError::InvalidCharacter {
                part: KeyPart::SystemCode,
                found: ':',
                position: 1
            }
        );
        assert!(SegmentKey::new("a", "b:c", "t", "f").is_err());
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        let err = SegmentKey::new("s", "", "t", "f").unwrap_err();
        assert_eq!(err.to_string(), "db_name must not be empty");
        let err = SegmentKey::new("s", "d", "t", "f f").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field_name contains ' ' at position 1; allowed characters are A-Z a-z 0-9 _ - . $"
        );
        let long = "x".repeat(MAX_IDENTIFIER_LEN + 1);
        let err = SegmentKey::new("s", "d", &long, "f").unwrap_err();
        assert_eq!(
            err.to_string(),
            "table_name is 129 characters long; at most 128 are allowed"
        );
        assert_eq!(err.part(), Some(KeyPart::TableName));
    }

    #[test]
    fn boundary_lengths() {
        let max = "y".repeat(MAX_IDENTIFIER_LEN);
        assert!(SegmentKey::new(&max, &max, &max, &max).is_ok());
    }

    #[test]
    fn non_ascii_is_rejected_not_truncated() {
        let err = SegmentKey::new("系统", "d", "t", "f").unwrap_err();
        assert!(matches!(
            err,
            IdentifierError::InvalidCharacter {
                found: '系',
                position: 0,
                ..
            }
        ));
    }

    #[test]
    fn malformed_storage_names_are_rejected() {
        for name in ["", "a:b:c", "a:b:c:d:e", "a::c:d"] {
            assert!(SegmentKey::from_storage_name(name).is_err(), "{name}");
        }
    }

    fn identifier() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.$-]{1,12}"
    }

    /// Short parts over a tiny alphabet, so that equal tuples and tuples whose
    /// naive concatenations coincide both come up often.
    fn small_part() -> impl Strategy<Value = String> {
        "[ab.]{1,3}"
    }

    proptest! {
        /// Two accepted tuples share a storage name only if they are the same
        /// tuple.
        #[test]
        fn storage_names_are_injective(
            a in (small_part(), small_part(), small_part(), small_part()),
            b in (small_part(), small_part(), small_part(), small_part()),
        ) {
            let ka = SegmentKey::new(&a.0, &a.1, &a.2, &a.3).unwrap();
            let kb = SegmentKey::new(&b.0, &b.1, &b.2, &b.3).unwrap();
            prop_assert_eq!(ka.storage_name() == kb.storage_name(), a == b);
        }

        /// Any value containing the separator is refused, wherever it sits.
        #[test]
        fn the_separator_is_never_accepted(prefix in "[ab]{0,4}", suffix in "[ab]{0,4}") {
            let value = format!("{prefix}:{suffix}");
            prop_assert!(Identifier::new(KeyPart::TableName, &value).is_err());
        }

        #[test]
        fn storage_names_round_trip(
            s in identifier(), d in identifier(), t in identifier(), f in identifier()
        ) {
            let key = SegmentKey::new(&s, &d, &t, &f).unwrap();
            prop_assert_eq!(SegmentKey::from_storage_name(&key.storage_name()).unwrap(), key);
        }
    }
}
